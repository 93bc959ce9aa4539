"""Init time of Lambda entry points (functions/<name>/app.py): what a cold start spends importing,
measured in fresh interpreters, against a baseline checkout in the same run.

    .venv/bin/python benchmarks/lambda_init.py --baseline /tmp/before --runs 9 \
        --functions wire_protocol,list_faces,detect_faces

``--baseline DIR`` is another checkout's root (``git archive <rev> src functions | tar -x -C DIR``).
Runs alternate baseline / current so that a busy machine slows both alike; the figures are
medians and the ratio current / baseline. The environment is Lambda's (LAMBDA_TASK_ROOT set, so
Powertools' tracing is on unless POWERTOOLS_TRACE_DISABLED, which the stack sets on the router).
It measures imports and handler construction only, not the runtime's own start nor the first
request (tools/sam measures whole cold starts in a Lambda-like container).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WATCHED = ("numpy", "onnxruntime", "PIL", "aws_xray_sdk", "boto3", "rekface.operations")

LOADER = """
import importlib.util, json, sys, time
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
ms = (time.perf_counter() - t0) * 1000
watched = json.loads(sys.argv[2])
print(json.dumps({"ms": ms, "modules": len(sys.modules),
                  "loaded": [m for m in watched if m in sys.modules]}))
"""


def init_once(root: Path, function: str, env: dict[str, str]) -> dict:
    run_env = {**os.environ, **env, "PYTHONPATH": str(root / "src")}
    run_env["LAMBDA_TASK_ROOT"] = str(root / "functions" / function)
    out = subprocess.run(
        [sys.executable, "-c", LOADER, str(root / "functions" / function / "app.py"),
         json.dumps(WATCHED)],
        env=run_env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--functions", default="wire_protocol,list_faces,detect_faces")
    args = parser.parse_args()
    base_env = {"AWS_DEFAULT_REGION": "us-east-1", "REKFACE_STORE": "dynamodb",
                "REKFACE_FUNCTIONS": "{}"}  # fmt: skip
    variants = [("baseline", args.baseline, {}), ("current", REPO, {})]
    print(f"{args.runs} fresh interpreters per row, medians; cpu count {os.cpu_count()}")
    for function in args.functions.split(","):
        rows = list(variants)
        if function == "wire_protocol":  # the stack's default for the router: tracing off
            rows.append(("current, trace off", REPO, {"POWERTOOLS_TRACE_DISABLED": "true"}))
        samples: dict[str, list[dict]] = {name: [] for name, _, _ in rows}
        for _ in range(args.runs):
            for name, root, env in rows:
                samples[name].append(init_once(root, function, {**base_env, **env}))
        base_ms = statistics.median(s["ms"] for s in samples["baseline"])
        for name, _, _ in rows:
            ms = statistics.median(s["ms"] for s in samples[name])
            spread = sorted(s["ms"] for s in samples[name])
            last = samples[name][-1]
            print(
                f"{function:16} {name:20} init {ms:7.1f} ms (min {spread[0]:.1f}, max "
                f"{spread[-1]:.1f})  x{ms / base_ms:.2f}  modules {last['modules']:5}  "
                f"loaded: {', '.join(last['loaded']) or '-'}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
