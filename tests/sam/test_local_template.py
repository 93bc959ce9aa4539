"""infra/app.py: the asset metadata every synth writes and the local variant for `sam local`
(a small app here; `make test-sam` runs the real template under SAM)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("aws_cdk")

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_lambda as lambda_  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402


def _load_app():
    sys.path.insert(0, str(REPO / "infra"))
    spec = importlib.util.spec_from_file_location("rekface_infra_app", REPO / "infra" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app_module = _load_app()


def small_app(tmp_path: Path) -> tuple[App, Stack]:
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return {}\n")
    app = App(outdir=str(tmp_path / "out"), context=app_module.ASSET_METADATA)
    stack = Stack(app, "S")
    for name in ("DetectFaces", app_module.ROUTER_ID):
        lambda_.Function(
            stack,
            name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="app.handler",
            code=lambda_.Code.from_asset(str(code)),
            environment={"REKFACE_STORE": "dynamodb"},
        )
    return app, stack


def _env_by_id(template: dict, suffix: str) -> dict:
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::Lambda::Function" and name.startswith(suffix):
            return res["Properties"]["Environment"]["Variables"]
    raise KeyError(suffix)


def test_asset_metadata_is_written(tmp_path: Path) -> None:
    """What SAM finds a function's code by (without it: 'Function X not found in template')."""
    _app, stack = small_app(tmp_path)
    template = Template.from_stack(stack).to_json()
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::Lambda::Function":
            assert res["Metadata"]["aws:asset:path"].startswith("asset."), name
            assert res["Metadata"]["aws:asset:property"] == "Code"


def test_local_variant_declares_the_endpoint_variables(tmp_path: Path) -> None:
    app, stack = small_app(tmp_path)
    assert app_module.declare_local_environment(app) == 2
    template = Template.from_stack(stack).to_json()
    detect = _env_by_id(template, "DetectFaces")
    router = _env_by_id(template, app_module.ROUTER_ID)
    assert detect == {"REKFACE_STORE": "dynamodb", **app_module.LOCAL_ENVIRONMENT}
    assert router == {
        "REKFACE_STORE": "dynamodb",
        **app_module.LOCAL_ENVIRONMENT,
        **app_module.LOCAL_ROUTER_ENVIRONMENT,
    }
    # Loopback only: a local run never sends traffic anywhere else.
    for value in (*app_module.LOCAL_ENVIRONMENT.values(), *router.values()):
        if value.startswith("http"):
            assert value.startswith("http://127.0.0.1:")


def test_sam_env_file_sets_only_declared_variables() -> None:
    """--env-vars overrides only what the template declares: every variable infra/sam-env.json
    sets must be declared by the local variant or the stack itself."""
    import json

    env = json.loads((REPO / "infra" / "sam-env.json").read_text())
    declared_locally = set(app_module.LOCAL_ENVIRONMENT) | set(app_module.LOCAL_ROUTER_ENVIRONMENT)
    stack_variables = {
        "REKFACE_TABLE_NAME",
        "REKFACE_IDEMPOTENCY_TABLE",
        "REKFACE_TOKEN_SECRET_ARN",
        "REKFACE_FUNCTIONS",
        "POWERTOOLS_LOG_LEVEL",
    }
    for scope, values in env.items():
        unknown = set(values) - declared_locally - stack_variables
        assert not unknown, (scope, unknown)
    assert set(env["WireProtocolFunction"]) == {"AWS_ENDPOINT_URL_LAMBDA", "REKFACE_FUNCTIONS"}


@pytest.mark.parametrize(
    ("context", "local"),
    [(None, False), ("{}", False), ('{"sam_local": "true"}', True), ('{"sam_local": true}', True),
     ('{"sam_local": "false"}', False)],
)  # fmt: skip
def test_is_local(context, local) -> None:
    assert app_module.is_local(context) is local


def test_samconfig_points_at_the_local_variant() -> None:
    """`sam local ...` without flags uses the template `make synth-local` writes and the env file
    whose variables it declares, on loopback."""
    import tomllib

    config = tomllib.loads((REPO / "samconfig.toml").read_text())["default"]
    for command in ("local_invoke", "local_start_lambda", "local_start_api"):
        params = config[command]["parameters"]
        assert params["template_file"] == "infra/cdk.out/sam-local/Rekface.template.json"
        assert (REPO / params["env_vars"]).is_file()
        assert params.get("host", "127.0.0.1") == "127.0.0.1"
    assert config["local_start_lambda"]["parameters"]["port"] == int(
        app_module.LOCAL_ROUTER_ENVIRONMENT["AWS_ENDPOINT_URL_LAMBDA"].rsplit(":", 1)[1]
    )
