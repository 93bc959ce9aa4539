"""`make test-sam`: the SAM CLI runs the synthesized template in Docker (tools/sam/run-tests.sh
starts the daemon and builds the stand-in Lambda image first). Skipped unless REKFACE_SAM_TESTS=1:
these need Docker, the .venv-sam tools and `make synth-local`, and take minutes.

Everything started here (moto's server, `sam local start-lambda`, `start-api`) is stopped at the
end of the session; every container is on the host network and every address is 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tools" / "sam"))  # local_aws: shared with benchmarks/cold_start.py

from local_aws import ENDPOINT, LocalAws  # noqa: E402

SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"
HOSTNET = REPO / "tools" / "sam" / "hostnet.py"
TEMPLATE = REPO / "infra" / "cdk.out" / "sam-local" / "Rekface.template.json"
ENV_VARS = REPO / "infra" / "sam-env.json"
EVENTS = REPO / "events"
LAMBDA_PORT = 3001  # infra/sam-env.json AWS_ENDPOINT_URL_LAMBDA
API_PORT = 3000
INVOKE_TIMEOUT_S = 300  # one `sam local invoke` (the first one builds SAM's image: ~1 min)
# S3-flow event keys -> photos (same person as photos/face-1.jpg, so search/compare match).
FLOW_PHOTOS = {
    "index/family/alice.jpg": "identities/Paul_Bremer/3.jpg",
    "compare/job-1/source.jpg": "identities/Paul_Bremer/1.jpg",
    "compare/job-1/target.jpg": "identities/Paul_Bremer/2.jpg",
    "search/family/visitor.jpg": "identities/Paul_Bremer/4.jpg",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_sam: needs Docker and the SAM CLI (make test-sam)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("REKFACE_SAM_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="needs Docker and SAM: run `make test-sam`")
    for item in items:
        if "needs_sam" in item.keywords:
            item.add_marker(skip)


def sam_env() -> dict[str, str]:
    """The environment of the SAM CLI: dummy credentials (moto), no telemetry, our region."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "SAM_CLI_TELEMETRY": "0",
    }


def sam_command(*args: str) -> list[str]:
    return [str(SAM_PYTHON), str(HOSTNET), *args]


def wait_port(port: int, proc: subprocess.Popen[Any] | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Background:
    """A process started by the tests, stopped (its whole process group) at teardown."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._fh.close()


@dataclass
class Invocation:
    function: str
    event: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def answer(self) -> dict[str, Any]:
        """The function's return value: the last JSON line SAM printed on stdout."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise AssertionError(
            f"{self.function} {self.event}: no answer on stdout (a timed-out or crashed run "
            f"still exits 0). stderr tail:\n{self.stderr[-3000:]}"
        )


def invoke(function: str, event: Path) -> Invocation:
    cmd = sam_command(
        "local", "invoke", function, "--template", str(TEMPLATE), "--event", str(event),
        "--env-vars", str(ENV_VARS), "--skip-pull-image",
    )  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=sam_env(), cwd=REPO, timeout=INVOKE_TIMEOUT_S
    )
    return Invocation(function, event.name, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sam-logs")


@pytest.fixture(scope="session")
def local_aws(logs_dir: Path, faces_dir: Path) -> Iterator[LocalAws]:
    """moto's server on 127.0.0.1:5000 (the port infra/sam-env.json names), seeded."""
    port = int(ENDPOINT.rsplit(":", 1)[1])
    if not port_free(port):
        pytest.fail(f"127.0.0.1:{port} is taken: infra/sam-env.json needs moto's server there")
    server = Background(
        "moto",
        [str(REPO / ".venv-sam" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        logs_dir / "moto.log",
    )
    try:
        wait_port(port, server.proc, 60)
        aws = LocalAws()
        aws.seed(faces_dir, FLOW_PHOTOS)
        yield aws
    finally:
        server.stop()


def _sam_service(subcommand: str, port: int, logs_dir: Path) -> Iterator[str]:
    """`sam local <subcommand>` on 127.0.0.1:<port>, stopped when the session ends."""
    if not port_free(port):
        pytest.fail(f"127.0.0.1:{port} is taken")
    cmd = sam_command(
        "local", subcommand, "--host", "127.0.0.1", "--port", str(port),
        "--template", str(TEMPLATE), "--env-vars", str(ENV_VARS), "--skip-pull-image",
        "--warm-containers", "LAZY",
    )  # fmt: skip
    server = Background(subcommand, cmd, logs_dir / f"{subcommand}.log", sam_env())
    try:
        wait_port(port, server.proc, 180)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def start_lambda(local_aws: LocalAws, logs_dir: Path) -> Iterator[str]:
    """`sam local start-lambda` on 127.0.0.1:3001: the router's target (and the S3 flows')."""
    yield from _sam_service("start-lambda", LAMBDA_PORT, logs_dir)


@pytest.fixture(scope="session")
def start_api(start_lambda: str, logs_dir: Path) -> Iterator[str]:
    """`sam local start-api` on 127.0.0.1:3000 (POST / and the per-operation routes)."""
    yield from _sam_service("start-api", API_PORT, logs_dir)
