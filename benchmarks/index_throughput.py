"""IndexFaces throughput, in process, on single-face 150x150 LFW photos of ../shared/faces.

The whole operation as a request runs it (validation, JPEG decode, detection, quality filter,
alignment, flip-averaged embedding, FaceDetail, the store's transaction on the embedded SQLite
store, the search cache update), with 1 thread and with as many threads as CPUs. Photos are the
identity photos that are exactly 150x150 and in which the engine finds exactly one face.

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
        ctx = build_context(Settings(data_dir=Path(tmp)))
        ctx.engine.warm_up()
        photos = single_face_photos(ctx, args.photos)
        print(f"{len(photos)} single-face 150x150 photos")
        warm = photos[:20]
        run(ctx, warm, 1, "warm-up")
        for threads in sorted({1, cpus}):
            rate = run(ctx, photos, threads, f"bench-{threads}")
            print(
                f"IndexFaces, {threads} thread(s): {rate:6.1f} images/s   target >= {TARGET:g} "
                f"(ratio {rate / TARGET:.2f})"
            )


if __name__ == "__main__":
    main()
