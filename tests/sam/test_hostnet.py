"""tools/sam/hostnet.py: how SAM's container arguments are moved to the host network (no Docker
needed; the wrapper's effect on real containers is what `make test-sam` runs on)."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load():
    path = REPO / "tools" / "sam" / "hostnet.py"
    spec = importlib.util.spec_from_file_location("rekface_sam_hostnet", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hostnet = _load()

# What SAM 1.170's Container.create passes to containers.create for a function container.
SAM_KWARGS = {
    "command": [],
    "working_dir": "/var/task",
    "volumes": {"/work/x/asset.1": {"bind": "/var/task", "mode": "ro,delegated"}},
    "tty": False,
    "use_config_proxy": True,
    "environment": {"AWS_LAMBDA_FUNCTION_HANDLER": "app.handler"},
    "ports": {"8080": ("127.0.0.1", 5391)},
    "entrypoint": ["/var/rapid/aws-lambda-rie", "--log-level", "error"],
    "mem_limit": "512m",
    "labels": {"sam.cli.container.type": "lambda", "sam.cli.function.name": "F"},
}


def test_sam_container_goes_to_the_host_network_with_the_emulator_on_samcli_port() -> None:
    out = hostnet.host_network_kwargs(SAM_KWARGS, api_port=6001)
    assert out["network_mode"] == "host"
    assert "ports" not in out
    assert out["entrypoint"] == [
        "/var/rapid/aws-lambda-rie",
        "--runtime-interface-emulator-address",
        "127.0.0.1:5391",  # the port SAM will call
        "--runtime-api-address",
        "127.0.0.1:6001",
        "--log-level",
        "error",
    ]
    # Everything else is SAM's, untouched; the input is not mutated.
    for key in ("volumes", "environment", "mem_limit", "labels", "working_dir"):
        assert out[key] == SAM_KWARGS[key]
    assert SAM_KWARGS["ports"] == {"8080": ("127.0.0.1", 5391)}


def test_any_interface_becomes_loopback() -> None:
    kwargs = {**SAM_KWARGS, "ports": {"8080": ("0.0.0.0", 5400)}}
    out = hostnet.host_network_kwargs(kwargs, api_port=6002)
    assert "127.0.0.1:5400" in out["entrypoint"]


def test_runtime_api_ports_differ_between_containers() -> None:
    """Two containers share the host's network namespace: each emulator's Runtime API needs its
    own port (the default 9001 would collide)."""
    a = hostnet.host_network_kwargs(SAM_KWARGS)["entrypoint"]
    b = hostnet.host_network_kwargs(SAM_KWARGS)["entrypoint"]
    port_a = int(a[a.index("--runtime-api-address") + 1].rsplit(":", 1)[1])
    port_b = int(b[b.index("--runtime-api-address") + 1].rsplit(":", 1)[1])
    assert port_a > 0 and port_b > 0
    with socket.socket() as s:  # a port the wrapper picks is bindable on loopback
        s.bind(("127.0.0.1", port_a))


def test_containers_not_created_by_sam_are_left_alone() -> None:
    other = {"ports": {"80": 8080}, "labels": {"app": "x"}, "entrypoint": ["sh"]}
    assert hostnet.host_network_kwargs(other) is other


def test_debug_entrypoint_keeps_its_own_command_but_still_moves_to_host() -> None:
    kwargs = {**SAM_KWARGS, "entrypoint": ["/tmp/lambci_debug_files/dlv", "--listen=:5986"]}
    out = hostnet.host_network_kwargs(kwargs)
    assert out["network_mode"] == "host" and out["entrypoint"] == kwargs["entrypoint"]


def test_install_patches_the_sdk_and_sets_host_network_on_builds() -> None:
    """The patch applies to the Docker SDK classes that SAM's client inherits from."""
    import pytest

    docker = pytest.importorskip("docker")
    from docker.api.build import BuildApiMixin
    from docker.models.containers import ContainerCollection

    original = (ContainerCollection.create, BuildApiMixin.build)
    seen: dict[str, object] = {}
    try:
        BuildApiMixin.build = lambda self, *a, **kw: seen.setdefault("build", kw)
        ContainerCollection.create = lambda self, image, **kw: seen.setdefault("create", kw)
        hostnet.install()
        BuildApiMixin.build(object(), fileobj=None, tag="samcli/lambda-python:x")
        ContainerCollection.create(object(), "img", **SAM_KWARGS)  # as SAM calls it
    finally:
        ContainerCollection.create, BuildApiMixin.build = original
    assert seen["build"]["network_mode"] == "host"
    assert seen["create"]["network_mode"] == "host" and "ports" not in seen["create"]
    assert docker is not None
