"""Run the SAM CLI with every container it creates on the host network.

SAM has no host-network mode: it publishes each function container's Runtime Interface Emulator
port (8080) on 127.0.0.1 through a bridge network, and `--docker-network host` only skips
connecting the container to a network. rekface's Docker daemon has no bridge at all
(tools/docker/dockerd.sh: --bridge=none), so this wrapper changes two calls of the Docker SDK
that SAM makes, and nothing else:

- ``containers.create`` of a SAM container (label ``sam.cli.container.type``): network_mode
  "host", no published ports, and the emulator told to listen on 127.0.0.1:<the host port SAM
  chose for it> (SAM calls that port) with its Runtime API on another free loopback port (two
  containers on one network namespace cannot both use the defaults 8080 and 9001);
- ``api.build`` (SAM's samcli/lambda-python image: FROM the runtime image + the layers): the
  RUN steps of the build run on the host network (there is no default bridge to run them on).

Usage: ``python tools/sam/hostnet.py local invoke ...`` (same arguments as ``sam``).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

RIE = "/var/rapid/aws-lambda-rie"
RIE_PORT = "8080/tcp"  # SAM's LambdaContainer.RAPID_PORT_CONTAINER, with or without "/tcp"
SAM_LABEL = "sam.cli.container.type"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_network_kwargs(kwargs: dict[str, Any], api_port: int | None = None) -> dict[str, Any]:
    """The ``containers.create`` arguments of a SAM container, moved to the host network.
    Containers that SAM did not label are returned unchanged."""
    if SAM_LABEL not in (kwargs.get("labels") or {}):
        return kwargs
    out = dict(kwargs)
    ports = dict(out.pop("ports", None) or {})
    out["network_mode"] = "host"
    out.pop("network", None)
    rie_binding = ports.get(RIE_PORT, ports.get(RIE_PORT.split("/")[0], ports.get(8080)))
    entrypoint = list(out.get("entrypoint") or [])
    if rie_binding and entrypoint[:1] == [RIE]:
        binding = rie_binding if isinstance(rie_binding, tuple) else (None, rie_binding)
        interface, host_port = binding
        host = "127.0.0.1" if interface in (None, "", "0.0.0.0", "localhost") else interface
        api = api_port or free_loopback_port()
        out["entrypoint"] = [
            RIE,
            "--runtime-interface-emulator-address",
            f"{host}:{host_port}",
            "--runtime-api-address",
            f"127.0.0.1:{api}",
            *entrypoint[1:],
        ]
    return out


def install() -> None:
    """Patch the Docker SDK classes SAM uses (its client subclasses docker.DockerClient)."""
    from docker.api.build import BuildApiMixin
    from docker.models.containers import ContainerCollection

    create = ContainerCollection.create
    build = BuildApiMixin.build

    def create_on_host(self: Any, image: str, *args: Any, **kwargs: Any) -> Any:
        return create(self, image, *args, **host_network_kwargs(kwargs))

    def build_on_host(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("network_mode", "host")
        return build(self, *args, **kwargs)

    ContainerCollection.create = create_on_host  # type: ignore[method-assign]
    BuildApiMixin.build = build_on_host  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    install()
    from samcli.cli.main import cli

    sys.argv = ["sam", *argv]
    return int(cli(prog_name="sam") or 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
