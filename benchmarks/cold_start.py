"""Cold start of every Lambda function, in a Lambda-like container: the first response and the
peak RSS, with and without the layers' bytecode (A/B in the same run, runs interleaved).

    tools/docker/dockerd.sh start && tools/sam/lambda-image.sh   # the stand-in runtime image
    make layers                                                 # layers/build/py3.12-x86_64
    .venv/bin/python benchmarks/cold_start.py --runs 5 [--functions detect_faces,wire_protocol]

The container is what Lambda's python3.12 runtime gives a function: the stand-in image
(tools/sam/lambda-image.sh: awslambdaric, the runtime interface emulator), read-only root file
system with a writable /tmp, a uid with no passwd entry and no HOME, the layers merged read-only
at /opt (deps + rekface at /opt/python, models at /opt/models), the function at /var/task, the
template's environment for that function, its memory size as the memory limit and one CPU
(Lambda's share at 1,769 MB; the data functions get less in Lambda). DynamoDB and S3 are moto's
server on 127.0.0.1 (seeded like `make test-sam`); every container runs on the host network.

Each run starts a fresh container and sends the function's events/ file once:
- ``first``: the client's time from the POST of the invocation to the answer. The emulator starts
  the runtime at the first invocation, so this is the runtime's start + imports + handler init +
  the request: what the caller of a cold Lambda waits for, minus Lambda's own sandbox set-up.
- ``rss``: the runtime process's peak RSS (VmHWM of the python process) after the answer.
Figures are min / median / max over the runs; ``A/B`` is the median without bytecode over the
median with. The machine is shared, so compare the two variants of one run, not runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "sam"))

from local_aws import LocalAws  # noqa: E402

IMAGE = "rekface-base/lambda-python:3.12"
LAYERS = REPO / "layers" / "build" / "py3.12-x86_64"
TEMPLATE = REPO / "infra" / "cdk.out" / "Rekface.template.json"
FACES = REPO.parent / "shared" / "faces"
MOTO = REPO / ".venv-sam" / "bin" / "moto_server"
UID = "993:993"  # no entry in the image's /etc/passwd
RIE = "/usr/local/bin/aws-lambda-rie"
# The environment the template cannot give locally (Refs): the local names of the resources.
LOCAL_VALUES = {
    "REKFACE_TABLE_NAME": "rekface",
    "REKFACE_IDEMPOTENCY_TABLE": "rekface-idempotency",
    "REKFACE_TOKEN_SECRET_ARN": "rekface-token-secret",
    "REKFACE_ACCOUNT_ID": "123456789012",
}
EVENT_OF = {"wire_protocol": "wire_protocol_detect_faces.json", "s3_events": "s3_index.json"}


@dataclass
class Run:
    function: str
    variant: str
    first_s: float
    rss_mb: float | None
    status: Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"127.0.0.1:{port} did not open")


def merged_opt(dest: Path, bytecode: bool) -> Path:
    """The layers as Lambda extracts them into /opt, as hard links (cheap); without bytecode,
    every __pycache__ removed from the copy."""
    opt = dest / ("opt-pyc" if bytecode else "opt-nopyc")
    (opt / "python").mkdir(parents=True)
    for layer, sub, target in (
        ("deps", "python", "python"),
        ("rekface", "python", "python"),
        ("models", "models", "models"),
    ):
        subprocess.run(["cp", "-al", f"{LAYERS / layer / sub}/.", str(opt / target)], check=True)
    if not bytecode:
        for cache in sorted(opt.rglob("__pycache__"), key=lambda p: -len(p.parts)):
            shutil.rmtree(cache)
    os.chmod(dest, 0o755)
    return opt


def template_environment() -> dict[str, dict[str, str]]:
    """Each function's environment from the synthesized template, by functions/ folder name."""
    template = json.loads(TEMPLATE.read_text())
    out: dict[str, dict[str, str]] = {}
    for res in template["Resources"].values():
        if res["Type"] != "AWS::Lambda::Function" or "aws:asset:path" not in res.get(
            "Metadata", {}
        ):
            continue
        desc = res["Properties"].get("Description", "")
        folder = function_folder(desc)
        if folder is None:
            continue
        env: dict[str, str] = {}
        for name, value in res["Properties"]["Environment"]["Variables"].items():
            env[name] = value if isinstance(value, str) else LOCAL_VALUES.get(name, "")
        if folder == "wire_protocol":
            from rekface.spec.operations import OPERATIONS

            ops = [op.name for op in OPERATIONS]
            # Every operation to the emulator of the warm target (it answers any function name).
            env["REKFACE_FUNCTIONS"] = json.dumps({op: "function" for op in ops})
        env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(res["Properties"]["MemorySize"])
        out[folder] = env
    return out


def function_folder(description: str) -> str | None:
    """'rekface DetectFaces (POST /detect-faces; ...)' -> 'detect_faces' (functions/ folders)."""
    if "POST /:" in description or "wire protocol" in description:
        return "wire_protocol"
    match = re.search(r"POST /([a-z-]+)", description)
    if match:
        return match.group(1).replace("-", "_")
    if "S3" in description:
        return "s3_events"
    return None


def event_for(folder: str) -> dict[str, Any]:
    return json.loads((REPO / "events" / EVENT_OF.get(folder, f"{folder}.json")).read_text())


def peak_rss_mb(container: str) -> float | None:
    """VmHWM of the container's python process, read from the host's /proc."""
    top = subprocess.run(
        ["docker", "top", container, "-eo", "pid,comm"], capture_output=True, text=True
    )
    for line in top.stdout.splitlines()[1:]:
        pid, _, comm = line.strip().partition(" ")
        if comm.strip().startswith("python"):
            with contextlib.suppress(OSError):
                for row in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if row.startswith("VmHWM:"):
                        return int(row.split()[1]) / 1024
    return None


class State:
    """The store every run starts from: collection ``family`` with one face of photos/face-1.jpg
    (ExternalImageId alice) and user ``paul``, as the events/ files expect; restored before each
    run by the operation functions' own handlers, in this process, against moto's server."""

    def __init__(self, moto: str) -> None:
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": moto,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "REKFACE_STORE": "dynamodb",
                "REKFACE_TABLE_NAME": LOCAL_VALUES["REKFACE_TABLE_NAME"],
                "REKFACE_ACCOUNT_ID": LOCAL_VALUES["REKFACE_ACCOUNT_ID"],
                "REKFACE_MODELS_DIR": str(REPO / "layers" / "models"),
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "CRITICAL",
            }
        )
        self._handlers: dict[str, Any] = {}

    def _call(self, folder: str, request: dict[str, Any]) -> int:
        if folder not in self._handlers:
            spec = importlib.util.spec_from_file_location(
                f"cold_start_{folder}", REPO / "functions" / folder / "app.py"
            )
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            self._handlers[folder] = module.handler
        event = {"httpMethod": "POST", "headers": {}, "isBase64Encoded": False,
                 "body": json.dumps(request)}  # fmt: skip
        # Powertools' metrics warn about reused dimensions when one process calls many handlers.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(self._handlers[folder](event, _Context())["statusCode"])

    def reset(self, folder: str) -> None:
        self._call("delete_collection", {"CollectionId": "family"})
        if folder == "create_collection":
            return  # its event creates it
        self._call("create_collection", {"CollectionId": "family"})
        image = {"S3Object": {"Bucket": "rekface-samples", "Name": "photos/face-1.jpg"}}
        status = self._call(
            "index_faces",
            {"CollectionId": "family", "Image": image, "ExternalImageId": "alice", "MaxFaces": 1},
        )
        assert status == 200, status
        if folder != "create_user":
            self._call("create_user", {"CollectionId": "family", "UserId": "paul"})


class _Context:
    function_name = "cold-start-state"
    memory_limit_in_mb = 1769
    aws_request_id = "state"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:state"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def run_once(
    folder: str,
    variant: str,
    opt: Path,
    env: dict[str, str],
    moto: str,
    cpus: float,
    keep: list[tuple[str, int]] | None = None,
) -> Run:
    """One cold container answering the function's event once (``keep``: a list to append
    (container, port) to, for a container left running unanswered: the router's target)."""
    port, api = free_port(), free_port()
    name = f"rekface-sam-cold-{uuid.uuid4().hex[:8]}"
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
    run_env = {
        **env,
        "AWS_ENDPOINT_URL": moto,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": folder,
        "AWS_LAMBDA_FUNCTION_HANDLER": "app.handler",
        "_HANDLER": "app.handler",
    }
    cmd = ["docker", "run", "-d", "--name", name, "--network", "host", "--read-only"]
    cmd += ["--tmpfs", "/tmp:rw,size=512m", "--user", UID, f"--memory={memory}m"]
    cmd += [f"--cpus={cpus}", "-v", f"{opt}:/opt:ro"]
    cmd += ["-v", f"{REPO / 'functions' / folder}:/var/task:ro"]
    for key, value in run_env.items():
        cmd += ["-e", f"{key}={value}"]
    # env -u HOME: Lambda gives the runtime no HOME (Docker would set HOME=/ for an unknown uid).
    cmd += ["--entrypoint", "/usr/bin/env", IMAGE, "-u", "HOME", RIE]
    cmd += ["--runtime-interface-emulator-address", f"127.0.0.1:{port}"]
    cmd += ["--runtime-api-address", f"127.0.0.1:{api}", "/var/runtime/bootstrap"]
    subprocess.run(cmd, check=True, capture_output=True)
    try:
        wait_port(port)
        if keep is not None:
            keep.append((name, port))
            return Run(folder, variant, 0.0, None, "kept")
        body = json.dumps(event_for(folder)).encode()
        url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
        t0 = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=120) as r:
            answer = json.loads(r.read() or b"null")
        first = time.perf_counter() - t0
        rss = peak_rss_mb(name)
        status = answer.get("statusCode", "ok") if isinstance(answer, dict) else answer
        if isinstance(answer, dict) and "errorType" in answer:
            status = answer["errorType"]
        elif isinstance(answer, dict) and answer.get("statusCode", 200) >= 400:
            with contextlib.suppress(ValueError, TypeError):
                error = json.loads(answer.get("body") or "{}")
                status = f"{status} {error.get('__type')}: {str(error.get('Message'))[:160]}"
        return Run(folder, variant, first, rss, status)
    finally:
        if keep is None:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        LocalAws(endpoint=endpoint).seed(
            FACES,
            {
                "index/family/alice.jpg": "identities/Paul_Bremer/3.jpg",
                "compare/job-1/source.jpg": "identities/Paul_Bremer/1.jpg",
            },
        )
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def summary(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--functions", default="", help="comma-separated functions/ folders")
    parser.add_argument("--cpus", type=float, default=1.0)
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()
    envs = template_environment()
    folders = [f for f in args.functions.split(",") if f] or sorted(envs)
    unknown = set(folders) - set(envs)
    if unknown:
        parser.error(f"not functions of {TEMPLATE}: {sorted(unknown)} (run make synth)")
    runs: list[Run] = []
    target: list[tuple[str, int]] = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="rekface-cold-"))
        moto = stack.enter_context(moto_server())
        stack.callback(lambda: [subprocess.run(["docker", "rm", "-f", n], capture_output=True)
                                for n, _ in target])  # fmt: skip
        state = State(moto)
        opts = {"pyc": merged_opt(Path(tmp), True), "no-pyc": merged_opt(Path(tmp), False)}
        # A warm-up container per variant: the host's page cache then holds both trees alike.
        for variant, opt in opts.items():
            run_once("list_collections", variant, opt, envs["list_collections"], moto, args.cpus)
        # The router forwards to a warm DetectFaces (the emulator serves Lambda's Invoke API for
        # any function name): its first response is its own cold start + one warm forward.
        if "wire_protocol" in folders:
            run_once("detect_faces", "pyc", opts["pyc"], envs["detect_faces"], moto, 1.0, target)
            warm = f"http://127.0.0.1:{target[0][1]}"
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{warm}/2015-03-31/functions/function/invocations",
                    data=json.dumps(event_for("detect_faces")).encode(),
                ),
                timeout=120,
            ).read()
            envs["wire_protocol"]["AWS_ENDPOINT_URL_LAMBDA"] = warm
        for i in range(args.runs):
            for folder in folders:
                order = list(opts.items()) if i % 2 == 0 else list(opts.items())[::-1]
                for variant, opt in order:
                    state.reset(folder)
                    run = run_once(folder, variant, opt, envs[folder], moto, args.cpus)
                    runs.append(run)
                    print(
                        f"  {folder:24s} {variant:7s} first {run.first_s:5.2f} s  "
                        f"rss {run.rss_mb or 0:6.1f} MB  "
                        f"-> {run.status}",
                        flush=True,
                    )
    print(f"\ncold start, {args.runs} runs each, --cpus {args.cpus} (min / median / max)")
    print(f"{'function':24s} {'first (pyc) s':>20s} {'first (no pyc) s':>20s} {'A/B':>5s}"
          f" {'peak RSS MB':>12s}")  # fmt: skip
    for folder in folders:
        mine = [r for r in runs if r.function == folder]
        pyc = [r.first_s for r in mine if r.variant == "pyc"]
        nopyc = [r.first_s for r in mine if r.variant == "no-pyc"]
        rss = [r.rss_mb for r in mine if r.variant == "pyc" and r.rss_mb is not None]
        ratio = statistics.median(nopyc) / statistics.median(pyc)
        print(
            f"{folder:24s} {summary(pyc):>20s} {summary(nopyc):>20s} {ratio:5.2f}"
            f" {max(rss) if rss else 0:12.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
