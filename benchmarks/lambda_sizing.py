"""Measure what the Lambda memory sizes and the CPU choice rest on: each function's handler run
from the trimmed layers alone (``python -S``, as in Lambda), in a fresh process per case.

    .venv/bin/python benchmarks/lambda_sizing.py [--runs 15]

Per case it prints the cold start (import + first request), the warm p50, and the peak RSS, with
onnxruntime on 1 thread pinned to 1 core (Lambda at 1769 MB = 1 vCPU) and on 2 threads over 2
cores (what 3538 MB would buy). The layers are built for this interpreter (3.11, x86_64) by the
same code as `make layers`; the deployed ones differ only in the Python version of the wheels.

What this cannot measure here: arm64 (Graviton) speed (no arm64 CPU on this machine), Lambda's
own cold-start overhead (sandbox, layer download), and DynamoDB latency (the data operations run
on the embedded store here, which only bounds their memory).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import SHARED_FACES  # noqa: E402

WORKER = r"""
import base64, json, resource, statistics, sys, time
t0 = time.perf_counter()
layer, function, body_json, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path[:0] = [function, f"{layer}/deps/python", f"{layer}/rekface/python"]
import app

class Context:
    function_name = "sizing"; memory_limit_in_mb = 1769; aws_request_id = "r1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sizing"

event = {"httpMethod": "POST", "path": "/", "headers": {}, "isBase64Encoded": False,
         "body": open(body_json).read()}
out = app.handler(event, Context())
cold = time.perf_counter() - t0
assert out["statusCode"] == 200, out["body"][:500]
times = []
for _ in range(runs):
    t = time.perf_counter()
    out = app.handler(event, Context())
    times.append(time.perf_counter() - t)
print(json.dumps({"cold_s": cold, "p50_ms": 1000 * statistics.median(times),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def load_layer_build():
    spec = importlib.util.spec_from_file_location(
        "rekface_layer_build", REPO / "layers/python/build.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def image(rel: str) -> str:
    import base64

    return base64.b64encode((SHARED_FACES / rel).read_bytes()).decode()


def cases() -> list[tuple[str, str, dict]]:
    a = image("identities/Paul_Bremer/12.jpg")
    b = image("identities/Paul_Bremer/5.jpg")
    group = sorted((SHARED_FACES / "groups").iterdir())[0].relative_to(SHARED_FACES)
    return [
        ("DetectFaces DEFAULT", "detect_faces", {"Image": {"Bytes": a}}),
        ("DetectFaces ALL", "detect_faces", {"Image": {"Bytes": a}, "Attributes": ["ALL"]}),
        ("DetectFaces group", "detect_faces", {"Image": {"Bytes": image(str(group))}}),
        (
            "CompareFaces",
            "compare_faces",
            {"SourceImage": {"Bytes": a}, "TargetImage": {"Bytes": b}},
        ),
        ("ListCollections", "list_collections", {}),
    ]


def run(layer: Path, function: str, body: dict, runs: int, threads: int, data: Path) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(body, fh)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(data),
        "REKFACE_MODELS_DIR": str(layer / "models" / "models"),
        "REKFACE_DATA_DIR": str(data),
        "REKFACE_THREADS": str(threads),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    cmd = [sys.executable, "-S", "-c", WORKER, str(layer), str(REPO / "functions" / function)]
    cmd += [fh.name, str(runs)]
    if threads == 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    os.unlink(fh.name)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    lb = load_layer_build()
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    layer = lb.build(lb.Target(here, "x86_64"))
    print(f"layers: {layer} (python {here}, x86_64), {args.runs} warm runs per case\n")
    print(
        f"{'case':22s} {'cold 1c':>8s} {'p50 1c':>8s} {'p50 2c':>8s} {'2c/1c':>6s} {'RSS MB':>7s}"
    )
    with tempfile.TemporaryDirectory() as data:
        for name, function, body in cases():
            one = run(layer, function, body, args.runs, 1, Path(data))
            two = run(layer, function, body, args.runs, 2, Path(data))
            ratio = two["p50_ms"] / one["p50_ms"]
            rss = max(one["rss_mb"], two["rss_mb"])
            print(
                f"{name:22s} {one['cold_s']:7.2f}s {one['p50_ms']:6.0f}ms {two['p50_ms']:6.0f}ms "
                f"{ratio:6.2f} {rss:7.0f}"
            )
    print(
        "\nReading: below 1769 MB Lambda gives a fraction of one vCPU, so a CPU-bound request "
        "takes ~1769/M times longer at the same GB-s cost: 1769 MB is the cheapest fast size for "
        "the image functions as long as peak RSS fits. A 2c/1c ratio well above 0.5 means a "
        "second vCPU (3538 MB) would double the price for less than double the speed."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
