"""Search at scale: SearchFaces' search part (embedding excluded), matrix load, memory per face.

Builds embedded-store (SQLite) collections of 100,000 and 1,000,000 faces: the real embeddings of
../shared/faces photos plus synthetic distractors drawn from a Gaussian fitted to them (mean and
covariance, then normalised), so that they sit in the same narrow cone as real faces: what makes
pruning work or not is realistic. The distractors serve timing only; accuracy is measured on real
faces by benchmarks/search_accuracy.py.

For each size it prints, against the targets of issue 10:
- the store load of the collection's matrix (SQLite -> columns) and the pruning index build;
- memory per face held by the search process (the backend's arrays, and the process RSS growth);
- warm search, exact, with the API defaults (threshold 80, MaxFaces 80) and with the heaviest
  request (threshold 0, MaxFaces 4096): min / p50 / p95 over real probe embeddings, beside one
  full matrix-vector product of the same matrix in the same process (the baseline: ratio < 1 is
  the work the pruning saves), and a check that the answers equal brute force.

usage: python benchmarks/search_scale.py [--sizes 100000 1000000] [--probes 200]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import identity_photos, load  # noqa: E402
from rekface.engine.calibrate import load_calibration  # noqa: E402
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.search.exact import top_k  # noqa: E402
from rekface.search.memory import InMemoryExactSearch  # noqa: E402
from rekface.settings import Settings  # noqa: E402
from rekface.stores import keys  # noqa: E402
from rekface.stores.records import FaceRecord, id_text  # noqa: E402
from rekface.stores.sqlite import SqliteStore  # noqa: E402


def held_bytes(store, collection, probe, min_cos) -> int:
    """Memory a fresh backend keeps for the collection after a search: traced allocations (numpy
    reports its arrays to tracemalloc), after the load's temporaries are freed."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    search = InMemoryExactSearch(store)
    search.search(collection, probe, 80, min_cos)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del search
    return held


def real_embeddings(limit: int) -> tuple[np.ndarray, list[str]]:
    engine = FaceEngine(Settings())
    engine.warm_up()
    vectors, people = [], []
    for person, rel in identity_photos():
        if len(vectors) >= limit:
            break
        faces = engine.detect(load(rel), max_faces=1)
        if faces:
            engine.embed(faces)
            vectors.append(faces[0].embedding)
            people.append(person)
    return np.array(vectors, np.float32), people


def distractors(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    mean, cov = real.mean(0).astype(np.float64), np.cov(real.T.astype(np.float64))
    out = np.empty((n, real.shape[1]), np.float32)
    for i in range(0, n, 100_000):
        block = rng.multivariate_normal(mean, cov, size=min(100_000, n - i), method="cholesky")
        out[i : i + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def fill(store: SqliteStore, n: int, gallery: np.ndarray, rng: np.random.Generator):
    """A collection of n faces: the gallery's real embeddings, then distractors; 100 per image."""
    collection = store.create_collection(f"scale-{n}")
    vectors = np.concatenate([gallery, distractors(gallery, n - len(gallery), rng)])
    for start in range(0, n, 100):
        image = keys.image_id(collection.incarnation, start.to_bytes(8, "big"), None)
        store.add_faces(
            collection,
            [
                FaceRecord(keys.face_id(image, i), image, f"img-{start}", (0.3, 0.4, 0.2, 0.1),
                           99.9, None, vectors[start + i])
                for i in range(min(100, n - start))
            ],
        )  # fmt: skip
    return store.get_collection(collection.collection_id), vectors


def stats(ms: list[float]) -> str:
    a = np.array(ms)
    p10, p50, p95 = np.percentile(a, [10, 50, 95])
    return f"min {a.min():6.2f}  p10 {p10:6.2f}  p50 {p50:6.2f}  p95 {p95:6.2f} ms"


def bench_size(n: int, gallery: np.ndarray, probes: np.ndarray, data_dir: Path) -> None:
    rng = np.random.default_rng(n)
    store = SqliteStore.in_dir(data_dir / f"n{n}", "bench")
    t = time.perf_counter()
    collection, vectors = fill(store, n, gallery, rng)
    print(f"\n== {n:,} faces (filled in {time.perf_counter() - t:.0f} s)")

    loads = []
    for _ in range(3):
        gc.collect()
        t = time.perf_counter()
        table, _ = store.load_faces(collection)
        loads.append(time.perf_counter() - t)
        del table
    target = 0.5 * n / 100_000
    print(
        f"load matrix from SQLite   min {min(loads):.3f} s  (target at 100k: <= 0.5 s; "
        f"scaled to this size {target:.1f} s, ratio {min(loads) / target:.2f})"
    )

    search = InMemoryExactSearch(store)
    t = time.perf_counter()
    search.table(collection)
    loaded = time.perf_counter() - t
    calibration = load_calibration()
    min_cos = calibration.cosine_at(80.0) - 1e-6
    t = time.perf_counter()
    search.search(collection, probes[0], 80, min_cos)  # builds the pruning index
    built = time.perf_counter() - t
    print(f"backend load {loaded:.3f} s, pruning index build {built:.3f} s (once per load)")
    held = held_bytes(store, collection, probes[0], min_cos)
    print(
        f"memory per face held by the search process: {held / n:.0f} B (every Python object and "
        f"array it keeps, capacity included)   target <= 1024 B (ratio {held / n / 1024:.2f})"
    )

    face_ids = search.table(collection).face_ids
    embeddings = search.table(collection).embeddings
    for label, k, cos in [
        ("defaults (80, MaxFaces 80)", 80, min_cos),
        ("0, MaxFaces 4096", 4096, -1.0),
    ]:
        heaviest = k == 4096
        ours, full, mismatches = [], [], 0
        for q in probes:
            t = time.perf_counter()
            got = search.search(collection, q, k, cos)
            ours.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            rows, _ = top_k(embeddings, q, k, cos, face_ids)
            full.append((time.perf_counter() - t) * 1000)
            expected = [id_text(face_ids[r]) for r in rows]
            mismatches += [m.face.face_id for m in got] != expected
        target = 5.0 if n <= 100_000 else 50.0
        p50, base = float(np.median(ours)), float(np.median(full))
        goal = (
            "no target (4096 Face records built)"
            if heaviest
            else f"target p50 <= {target:g} ms (ratio {p50 / target:.2f})"
        )
        print(f"search, threshold {label:<27} {stats(ours)}   {goal}")
        print(
            f"  baseline: one full product + top-k   {stats(full)}   ours/baseline p50 "
            f"{p50 / base:.2f}; answers equal to brute force: {len(probes) - mismatches}/"
            f"{len(probes)}"
        )
    del vectors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    print(
        time.strftime("%Y-%m-%d %H:%M"),
        f"| numpy {np.__version__} | {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
        + " (other processes share the machine: figures are upper bounds)",
    )
    real, _ = real_embeddings(1000 + args.probes)
    gallery, probes = real[: len(real) - args.probes], real[len(real) - args.probes :]
    print(f"{len(gallery)} real gallery embeddings, {len(probes)} real probes")
    with tempfile.TemporaryDirectory(prefix="rekface-scale-") as tmp:
        for n in args.sizes:
            bench_size(n, gallery, probes, Path(tmp))
            gc.collect()


if __name__ == "__main__":
    main()
