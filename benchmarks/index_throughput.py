"""IndexFaces throughput, in process, on single-face 150x150 LFW photos of ../shared/faces.

The whole operation as a request runs it (validation, JPEG decode, detection, quality filter,
alignment, flip-averaged embedding, FaceDetail, the store's transaction on the embedded SQLite
store, the search cache update): with 1 request thread (onnxruntime using every core), and with
one request thread per CPU (onnxruntime on one thread each: REKFACE_THREADS=1, the configuration
for throughput). Photos are the identity photos that are exactly 150x150 and in which the engine
finds exactly one face. Also printed: the fastest time of each stage on one core, which bounds
the throughput of an otherwise idle machine (CPUs / sum of the stages).

usage: python benchmarks/index_throughput.py [--photos 600]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import identity_photos, image_bytes, load  # noqa: E402
from rekface import operations  # noqa: E402
from rekface.adapters.bootstrap import build_context  # noqa: E402
from rekface.settings import Settings  # noqa: E402

TARGET = 80.0  # images/s


def single_face_photos(ctx, limit: int) -> list[bytes]:
    out = []
    for _, rel in identity_photos():
        data = image_bytes(rel)
        if Image.open(io.BytesIO(data)).size != (150, 150):
            continue
        if len(ctx.engine.detect(load(rel))) == 1:
            out.append(data)
        if len(out) == limit:
            break
    return out


def run(ctx, photos: list[bytes], threads: int, collection: str) -> float:
    operations.run(ctx, "CreateCollection", {"CollectionId": collection})

    def index(i: int) -> None:
        out = operations.run(
            ctx,
            "IndexFaces",
            {
                "CollectionId": collection,
                "Image": {"Bytes": photos[i]},
                "ExternalImageId": f"photo-{i}",
            },
        )
        assert len(out["FaceRecords"]) <= 1

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(index, range(len(photos))))
    elapsed = time.perf_counter() - t
    count = operations.run(ctx, "DescribeCollection", {"CollectionId": collection})["FaceCount"]
    assert count >= len(photos) * 0.95, count  # (AUTO may refuse a few faces)
    return len(photos) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=600)
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    print(
        time.strftime("%Y-%m-%d %H:%M"),
        f"| {cpus} CPUs, load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "(other processes share the machine: figures are lower bounds)",
    )
    with tempfile.TemporaryDirectory(prefix="rekface-index-") as tmp:
        for threads, ort_threads in sorted({(1, 0), (cpus, 1)}):
            ctx = build_context(Settings(data_dir=Path(tmp) / str(threads), threads=ort_threads))
            ctx.engine.warm_up()
            photos = single_face_photos(ctx, args.photos)
            run(ctx, photos[:20], 1, "warm-up")
            rate = run(ctx, photos, threads, "bench")
            print(
                f"IndexFaces, {threads} request thread(s), onnxruntime threads "
                f"{ort_threads or cpus}: {rate:6.1f} images/s   target >= {TARGET:g} "
                f"(ratio {rate / TARGET:.2f})"
            )
        stages(ctx, photos)


def stages(ctx, photos: list[bytes]) -> None:
    """Fastest time of each stage for one photo, on one core (ctx has onnxruntime on 1 thread)."""
    from rekface.engine.decode import decode_image

    best: dict[str, float] = {}

    def timed(name: str, fn):
        t = time.perf_counter()
        out = fn()
        best[name] = min(best.get(name, 1e9), (time.perf_counter() - t) * 1000)
        return out

    for data in photos[:100]:
        image = timed("decode", lambda data=data: decode_image(data))
        faces = timed(
            "detect + align + pose + quality", lambda image=image: ctx.engine.detect(image)
        )
        timed("embed (chip + flipped chip)", lambda faces=faces: ctx.engine.embed(faces))
    total = sum(best.values())
    parts = ", ".join(f"{k} {v:.1f} ms" for k, v in best.items())
    cpus = os.cpu_count() or 1
    print(
        f"fastest stages on one core: {parts}; sum {total:.1f} ms -> at most "
        f"{cpus * 1000 / total:.0f} images/s on {cpus} idle cores (before the request's own "
        "work: validation, FaceDetail, store, hash)"
    )


if __name__ == "__main__":
    main()
