"""Latency, cold start and memory of DetectFaces and CompareFaces (issue 9 targets).

Measures, on this machine:
- warm DetectFaces (DEFAULT) on a 640x480 one-face JPEG, in process;
- warm CompareFaces with two 150x150 LFW photos (one face each), in process and through
  `rekface serve` (its own process, as users run it) with a real boto3 client on loopback;
- cold start: a fresh interpreter importing rekface and loading both models (warm_up), and that
  process's peak RSS after serving requests.
Each figure is printed with its target and the ratio figure/target (< 1 meets it).

usage: python benchmarks/latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import SHARED_FACES  # noqa: E402

PHOTO_640 = "identities/deepface_person_05/3.jpg"  # 1600x1073, one face; cut to 640x480
LFW_A, LFW_B = "identities/Paul_Bremer/12.jpg", "identities/Paul_Bremer/5.jpg"


def jpeg_640x480() -> bytes:
    im = Image.open(SHARED_FACES / PHOTO_640).convert("RGB")
    im = im.resize((716, 480), Image.LANCZOS).crop((38, 0, 678, 480))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def timed(fn, runs: int, warmup: int = 5) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out) * 1000


def line(name: str, ms: np.ndarray, target: float) -> None:
    p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
    print(
        f"{name:<48} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms   target p50 <= {target:g} ms "
        f"(ratio {p50 / target:.2f})"
    )


COLD = r"""
import time, resource, json, sys
t0 = time.perf_counter()
from rekface.adapters.bootstrap import build_context
from rekface import operations
ctx = build_context()
ctx.engine.warm_up()
ready = time.perf_counter() - t0
data = open(sys.argv[1], "rb").read()
for _ in range(20):
    operations.run(ctx, "DetectFaces", {"Image": {"Bytes": data}})
    pair = {"SourceImage": {"Bytes": data}, "TargetImage": {"Bytes": data}}
    operations.run(ctx, "CompareFaces", pair)
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cold_s": ready, "rss_mb": rss_mb}))
"""


def cold_start(runs: int = 5) -> None:
    tmp = REPO / ".cache"
    tmp.mkdir(exist_ok=True)
    photo = tmp / "bench_640x480.jpg"
    photo.write_bytes(jpeg_640x480())
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD, str(photo)],
            capture_output=True,
            text=True,
            check=True,
            env={"REKFACE_DATA_DIR": str(tmp / "cold"), "PATH": "/usr/bin:/bin"},
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold = statistics.median(r["cold_s"] for r in results)
    rss = max(r["rss_mb"] for r in results)
    print(
        f"{'cold start (import + load models), median of ' + str(runs):<48} {cold:7.2f} s"
        f"{'':20} target <= 1.0 s (ratio {cold / 1.0:.2f})"
    )
    print(
        f"{'peak RSS after 20 DetectFaces + 20 CompareFaces':<48} {rss:7.0f} MB"
        f"{'':19} target <= 400 MB (ratio {rss / 400:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()

    import boto3
    from botocore.config import Config

    from rekface import operations
    from rekface.adapters.bootstrap import build_context
    from rekface.settings import Settings

    ctx = build_context(Settings(data_dir=REPO / ".cache" / "latency"))
    ctx.engine.warm_up()
    big = jpeg_640x480()
    a, b = (SHARED_FACES / LFW_A).read_bytes(), (SHARED_FACES / LFW_B).read_bytes()
    assert len(operations.run(ctx, "DetectFaces", {"Image": {"Bytes": big}})["FaceDetails"]) == 1

    detect = timed(lambda: operations.run(ctx, "DetectFaces", {"Image": {"Bytes": big}}), args.runs)
    compare_req = {"SourceImage": {"Bytes": a}, "TargetImage": {"Bytes": b}}
    compare = timed(lambda: operations.run(ctx, "CompareFaces", compare_req), args.runs)

    port = 8765 + 17
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "rekface"),
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(REPO / ".cache" / "latency-serve"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in server.stdout.readline()
        client = boto3.client(
            "rekognition",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}),
        )
        served = timed(
            lambda: client.compare_faces(SourceImage={"Bytes": a}, TargetImage={"Bytes": b}),
            args.runs,
        )
    finally:
        server.terminate()
        server.wait()

    print(f"rekface latency, {args.runs} warm runs each, {time.strftime('%Y-%m-%d')}")
    line("DetectFaces DEFAULT, 640x480, in process", detect, 20)
    line("CompareFaces 150x150 LFW, in process", compare, 25)
    line("CompareFaces 150x150 LFW, boto3 -> rekface serve", served, 30)
    print(
        f"{'server overhead (serve p50 / in-process p50)':<48} "
        f"{np.median(served) / np.median(compare):.2f}x"
    )
    cold_start()


if __name__ == "__main__":
    main()
