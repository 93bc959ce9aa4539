"""Synthesize the CDK app once per test session (even with pytest-xdist: the first worker
synthesizes under a file lock, the others read its output) and hand the templates to the tests.

Two stacks in one app, so one synth covers both auth modes: ``Rekface`` (defaults: IAM auth) and
``RekfaceApiKey`` (API-key mode, reserved concurrency, an extra images bucket). The layers they
package are built first with ``make layers``' own code (downloads wheels once, then offline).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra"))


def _load_layer_build():
    """layers/python/build.py (a script, not a package), under a name of its own."""
    spec = importlib.util.spec_from_file_location(
        "rekface_layer_build", REPO / "layers" / "python" / "build.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


layer_build = _load_layer_build()

DEFAULT_TARGET = layer_build.Target("3.12", "x86_64")
API_KEY_CONTEXT = {
    "auth": "api_key",
    "reserved_concurrency": 5,
    "image_buckets": "my-photos,more-photos",
    "deletion_protection": "false",
    "search": "s3vectors",  # issue 13: the vector bucket and its grants
    "router_tracing": "true",  # X-Ray SDK subsegments in the POST / router
}


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all xdist workers of this session share (the documented xdist pattern)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if base.name.startswith("popen-gw") else base


@pytest.fixture(scope="session")
def layers() -> Path:
    """layers/build/py3.12-x86_64, as `make layers` builds it (incremental, locked)."""
    with locked(layer_build.DEFAULT_OUT / ".lock"):
        return layer_build.build(DEFAULT_TARGET)


@dataclass
class Synth:
    templates: dict[str, dict[str, Any]]
    report: dict[str, Any]
    error: str
    outdir: Path

    def template(self, stack: str = "Rekface"):
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[stack])


def _synthesize(outdir: Path) -> None:
    from rekface_infra.application import build, new_app, synth
    from rekface_infra.config import StackConfig

    app = new_app(outdir=str(outdir))
    build(app)
    api_key = {k: str(v) for k, v in API_KEY_CONTEXT.items()}
    build(app, StackConfig.from_context(api_key.get), "RekfaceApiKey")
    error = ""
    try:
        synth(app)
    except RuntimeError as exc:  # cdk-nag findings fail the synth: the tests report them
        error = str(exc)
    (outdir / "synth-error.txt").write_text(error)


@pytest.fixture(scope="session")
def synth(layers: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    root = shared_dir(tmp_path_factory) / "infra-synth"
    outdir = root / "cdk.out"
    with locked(root / ".lock"):
        if not (outdir / "synth-error.txt").is_file():
            _synthesize(outdir)
    templates = {
        name: json.loads((outdir / f"{name}.template.json").read_text())
        for name in ("Rekface", "RekfaceApiKey")
        if (outdir / f"{name}.template.json").is_file()
    }
    report_file = outdir / "validation-report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    return Synth(templates, report, (outdir / "synth-error.txt").read_text(), outdir)
