"""Cost of DetectFaces ALL, and proof that DEFAULT does not pay for it (issue 12 targets).

Measures, on this machine (2 cores):
- warm DetectFaces ALL and DEFAULT on the 640x480 one-face JPEG of benchmarks/latency.py, in
  process (target: ALL p50 <= 60 ms);
- the cost per face of each attribute stage (68 landmarks x2, age/gender, expressions, mesh x2,
  iris x2), in process;
- DEFAULT before and after the same process has served ALL (target: within 5 %);
- DEFAULT cold start and peak RSS in fresh interpreters, for this tree and for the tree before
  the attribute stages existed (``git archive`` of BASELINE, no working-tree changes), and which
  rekface modules and models a DEFAULT process holds (target: unchanged).

usage: python benchmarks/attributes_latency.py [--runs N] [--cold N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.latency import jpeg_640x480, timed  # noqa: E402

# The last commit before the attribute stages (operations: one face_details() for DetectFaces and
# IndexFaces).
BASELINE = "e59af98"

COLD = r"""
import time, resource, json, sys
t0 = time.perf_counter()
from rekface.adapters.bootstrap import build_context
from rekface import operations
ctx = build_context()
ctx.engine.warm_up()
ready = time.perf_counter() - t0
data = open(sys.argv[1], "rb").read()
attrs = sys.argv[2:] or ["DEFAULT"]
t1 = time.perf_counter()
operations.run(ctx, "DetectFaces", {"Image": {"Bytes": data}, "Attributes": attrs})
first = time.perf_counter() - t1
warm = []
for _ in range(40):
    t2 = time.perf_counter()
    operations.run(ctx, "DetectFaces", {"Image": {"Bytes": data}, "Attributes": attrs})
    warm.append(time.perf_counter() - t2)
warm_ms = sorted(warm)[len(warm) // 2] * 1000
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
mods = sorted(m for m in sys.modules if m.startswith("rekface.engine.attributes"))
loaded = sorted(ctx.engine._sessions._sessions)
print(json.dumps({"cold_s": ready, "first_s": first, "warm_ms": warm_ms, "rss_mb": rss_mb,
                  "attr_modules": mods, "models": loaded}))
"""


def report(name: str, ms: np.ndarray, target: float | None = None) -> float:
    p50, p95 = float(np.percentile(ms, 50)), float(np.percentile(ms, 95))
    extra = f"   target p50 <= {target:g} ms (ratio {p50 / target:.2f})" if target else ""
    print(f"{name:<52} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms{extra}")
    return p50


def baseline_tree() -> Path:
    """src/ of BASELINE, extracted once under .cache (read from git, the working tree untouched)."""
    out = REPO / ".cache" / f"baseline-{BASELINE}"
    if not (out / "src" / "rekface").is_dir():
        archive = subprocess.run(
            ["git", "archive", BASELINE, "src"], cwd=REPO, capture_output=True, check=True
        ).stdout
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(out, filter="data")
    return out / "src"


def fresh_process(src: Path, photo: Path, attrs: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", COLD, str(photo), *attrs],
        capture_output=True,
        text=True,
        check=True,
        env={
            "PYTHONPATH": str(src),
            "REKFACE_DATA_DIR": str(REPO / ".cache" / "cold"),
            "REKFACE_MODELS_DIR": str(REPO / "layers" / "models"),
            "PATH": "/usr/bin:/bin",
        },
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold(configs: dict[str, tuple[Path, list[str]]], photo: Path, runs: int) -> dict[str, dict]:
    """Each configuration in ``runs`` fresh interpreters, interleaved (A, B, C, A, B, C, ...) so
    that a change in the machine's load hits every configuration alike; medians."""
    results: dict[str, list[dict]] = {name: [] for name in configs}
    for _ in range(runs):
        for name, (src, attrs) in configs.items():
            results[name].append(fresh_process(src, photo, attrs))
    return {
        name: {
            "cold_s": statistics.median(r["cold_s"] for r in rs),
            "first_ms": statistics.median(r["first_s"] for r in rs) * 1000,
            "warm_ms": statistics.median(r["warm_ms"] for r in rs),
            "rss_mb": statistics.median(r["rss_mb"] for r in rs),
            "attr_modules": rs[0]["attr_modules"],
            "models": rs[0]["models"],
        }
        for name, rs in results.items()
    }


def stage_costs(runs: int) -> None:
    from benchmarks.shared_faces import load
    from rekface.engine.faces import FaceEngine
    from rekface.settings import Settings

    engine = FaceEngine(Settings())
    image = load("identities/Paul_Bremer/5.jpg")
    face = engine.detect(image)[0]
    analyzer = engine.attributes

    def fresh():
        return analyzer.analysis(image.rgb, face)

    warm = fresh()
    _ = (warm.age_gender, warm.expression, warm.eyes)
    stages = {
        "68 landmarks (2 passes, 2nd with its mirror)": lambda: fresh().landmarks68,
        "age/gender (crop + mirror)": lambda a=warm: analyzer._nets.age_gender.run(
            a.landmarks68.aligned
        ),
        "expressions (crop + mirror)": lambda a=warm: analyzer._nets.expression.run(
            a.landmarks68.aligned
        ),
        "mesh (2 passes)": lambda: fresh().mesh,
        "iris (2 eyes), given the mesh": lambda: _iris(analyzer, image, face, warm),
    }
    print("cost per face of each stage (one 250x250 LFW photo):")
    for name, fn in stages.items():
        report(f"  {name}", timed(fn, runs))


def _iris(analyzer, image, face, warm):
    a = analyzer.analysis(image.rgb, face)
    a.__dict__["mesh"] = warm.mesh  # reuse the mesh: time the iris net alone
    return a.eyes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()

    from rekface import operations
    from rekface.adapters.bootstrap import build_context
    from rekface.settings import Settings

    data = jpeg_640x480()
    ctx = build_context(Settings(data_dir=REPO / ".cache" / "latency"))
    ctx.engine.warm_up()

    def run(attrs: list[str]):
        def go():
            return operations.run(
                ctx, "DetectFaces", {"Image": {"Bytes": data}, "Attributes": attrs}
            )

        return go

    assert len(run(["DEFAULT"])()["FaceDetails"]) == 1
    t = time.perf_counter()
    run(["ALL"])()
    first_all = (time.perf_counter() - t) * 1000
    default_before = report(
        "DetectFaces DEFAULT 640x480 (no ALL served yet)", timed(run(["DEFAULT"]), args.runs)
    )
    all_p50 = report("DetectFaces ALL 640x480, warm", timed(run(["ALL"]), args.runs), 60)
    default_after = report(
        "DetectFaces DEFAULT 640x480 (after ALL)", timed(run(["DEFAULT"]), args.runs)
    )
    print(f"first ALL request in a warm process (loads 5 attribute models): {first_all:.0f} ms")
    print(
        f"ALL - DEFAULT = {all_p50 - default_before:.1f} ms per one-face photo; "
        f"DEFAULT after/before ALL = {default_after / default_before:.3f} (target within 5 %)"
    )
    stage_costs(args.runs)

    photo = REPO / ".cache" / "bench_640x480.jpg"
    photo.parent.mkdir(exist_ok=True)
    photo.write_bytes(data)
    runs = cold(
        {
            f"DEFAULT, baseline {BASELINE}": (baseline_tree(), ["DEFAULT"]),
            "DEFAULT, this tree": (REPO / "src", ["DEFAULT"]),
            "ALL, this tree": (REPO / "src", ["ALL"]),
        },
        photo,
        args.cold,
    )
    base, now, every = runs.values()
    print(
        f"fresh interpreters, median of {args.cold}:     cold start   first request   "
        "warm p50   peak RSS"
    )
    for name, r in runs.items():
        print(
            f"  {name:<34} {r['cold_s']:8.2f} s {r['first_ms']:11.0f} ms {r['warm_ms']:8.1f} ms"
            f" {r['rss_mb']:7.0f} MB"
        )
    print(
        f"DEFAULT this tree / baseline: cold start {now['cold_s'] / base['cold_s']:.3f}, "
        f"warm p50 {now['warm_ms'] / base['warm_ms']:.3f}, RSS {now['rss_mb'] / base['rss_mb']:.3f}"
        " (target: within 5 %)"
    )
    print(
        f"DEFAULT process: attribute modules imported {now['attr_modules']}, models {now['models']}"
    )
    print(f"ALL process: models {every['models']}")


if __name__ == "__main__":
    main()
