"""Rank-1 identification on the shared identities, through the API operations.

Gallery: the first photo of each of the 450 people of ../shared/faces/identities plus the 400
singletons (distractors), indexed with IndexFaces (MaxFaces 1, default QualityFilter AUTO) into an
embedded-store collection. Probes: every other photo of the 450 people, searched with
SearchFacesByImage (largest face; MaxFaces 1, FaceMatchThreshold 0 for rank-1). A probe counts as
correct when the top match is a face of the same person (the four deepface_person_* folders that
are probably LFW people are not held against a match, see shared_faces.ALIASED_NAMES). A probe
with no face, or whose person could not be enrolled, counts as wrong.

Also printed, at the default FaceMatchThreshold (80): the share of probes whose top match is the
right person with Similarity >= 80, and of probes whose top match is someone else >= 80.

usage: python benchmarks/search_accuracy.py [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import (  # noqa: E402
    SHARED_FACES,
    identity_photos,
    image_bytes,
    may_pair_as_different,
)
from rekface import operations  # noqa: E402
from rekface.adapters.bootstrap import build_context  # noqa: E402
from rekface.errors import InvalidParameterException  # noqa: E402
from rekface.settings import Settings  # noqa: E402

TARGET = 0.99


def external_id(person: str, rel: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.\-:]", "_", f"{person}:{Path(rel).name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    by_person: dict[str, list[str]] = {}
    for person, rel in identity_photos():
        by_person.setdefault(person, []).append(rel)
    singletons = sorted(os.listdir(SHARED_FACES / "singletons"))
    gallery = [(p, rels[0]) for p, rels in by_person.items()]
    gallery += [(f"singleton:{p}", f"singletons/{p}/1.jpg") for p in singletons]
    probes = [(p, rel) for p, rels in by_person.items() for rel in rels[1:]]

    with tempfile.TemporaryDirectory(prefix="rekface-rank1-") as tmp:
        ctx = build_context(Settings(data_dir=Path(tmp)))
        ctx.engine.warm_up()
        operations.run(ctx, "CreateCollection", {"CollectionId": "rank1"})
        owner: dict[str, str] = {}

        def enroll(item: tuple[str, str]) -> tuple[str, str | None]:
            person, rel = item
            out = operations.run(
                ctx,
                "IndexFaces",
                {
                    "CollectionId": "rank1",
                    "Image": {"Bytes": image_bytes(rel)},
                    "ExternalImageId": external_id(person, rel),
                    "MaxFaces": 1,
                },
            )
            records = out["FaceRecords"]
            return person, records[0]["Face"]["FaceId"] if records else None

        t = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            for person, face_id in pool.map(enroll, gallery):
                if face_id is not None:
                    owner[face_id] = person
        enrolled = set(owner.values())
        print(
            f"gallery: {len(owner)} of {len(gallery)} photos indexed "
            f"({len(gallery) - len(owner)} without an indexable face) in "
            f"{time.perf_counter() - t:.0f} s"
        )

        def probe(item: tuple[str, str]) -> tuple[str, str | None, float]:
            person, rel = item
            try:
                out = operations.run(
                    ctx,
                    "SearchFacesByImage",
                    {
                        "CollectionId": "rank1",
                        "Image": {"Bytes": image_bytes(rel)},
                        "MaxFaces": 1,
                        "FaceMatchThreshold": 0,
                    },
                )
            except InvalidParameterException:  # no face in the probe
                return person, None, 0.0
            (match,) = out["FaceMatches"]
            return person, owner[match["Face"]["FaceId"]], match["Similarity"]

        t = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            results = list(pool.map(probe, probes))
        elapsed = time.perf_counter() - t

    n = len(results)
    no_face = sum(1 for _, top, _ in results if top is None)
    unenrolled = sum(1 for person, _, _ in results if person not in enrolled)
    right = [
        (person, top, sim)
        for person, top, sim in results
        if top is not None and not may_pair_as_different(person, top)
    ]
    aliased = sum(1 for person, top, _ in right if person != top)
    rank1 = len(right) / n
    tar80 = sum(1 for *_, sim in right if sim >= 80) / n
    wrong80 = sum(
        1
        for person, top, sim in results
        if top is not None and sim >= 80 and may_pair_as_different(person, top)
    )
    print(
        f"probes: {n} photos of {len(by_person)} people searched in {elapsed:.0f} s "
        f"({n / elapsed:.1f}/s, {args.threads} threads); {no_face} without a face, "
        f"{unenrolled} of people not enrolled"
    )
    print(
        f"rank-1 identification: {rank1:.2%} ({len(right)}/{n}; {aliased} via a deepface alias)"
        f"   target >= {TARGET:.0%} ({'met' if rank1 >= TARGET else 'NOT met'})"
    )
    print(
        f"at FaceMatchThreshold 80: right person found {tar80:.2%}, "
        f"someone else returned first {wrong80 / n:.2%} ({wrong80})"
    )


if __name__ == "__main__":
    main()
