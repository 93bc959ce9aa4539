"""S3 Vectors in YOUR account: write rate, query latency and recall of the true same-person
matches on identity-clustered face embeddings, as rekface's backend uses the service.

Not measurable on the machine rekface is developed on (no AWS account): run it where you have
credentials. It creates a vector bucket (``--bucket``, default rekface-bench-<random>) with one
cosine index of 128 dimensions, writes ``--size`` embeddings (the real ../shared/faces ones if
present, plus synthetic people drawn as benchmarks/pgvector_scale.py draws them) in PutVectors
batches of 500 paced under the index's 2,500 vectors/s, then runs ``--probes`` searches as
rekface does (topK = MaxFaces 80 + 16, pages followed) and compares each answer with the exact
one computed locally. Finally it deletes the index and the bucket (``--keep`` to keep them).

Cost of a run at 1 M vectors (us-east-1 list prices as published at GA: PutVectors $0.20 per
logical GB, storage $0.06 per GB-month, QueryVectors $2.50 per million calls plus the index's
logical size processed per call; check the current page): ~0.55 logical GB written (~$0.11),
a few cents of storage for the hours it lives, 500 queries well under $0.01.

usage: python benchmarks/s3vectors_scale.py --region us-east-1 [--size 1000000] [--probes 500]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.pgvector_scale import (  # noqa: E402
    IdentityModel,
    collection_of,
    real_or_synthetic_seed,
)
from rekface.engine.calibrate import load_calibration  # noqa: E402
from rekface.search.exact import top_k  # noqa: E402
from rekface.search.indexed import OVER_FETCH  # noqa: E402
from rekface.search.s3vectors import DIMENSION, PUT_BATCH, WRITE_RATE, WriteRate  # noqa: E402

MAX_FACES = 80


def stats(ms: list[float]) -> str:
    a = np.array(ms)
    p10, p50, p95 = np.percentile(a, [10, 50, 95])
    return f"min {a.min():7.1f}  p10 {p10:7.1f}  p50 {p50:7.1f}  p95 {p95:7.1f} ms"


def run(client: Any, args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(args.seed)
    real, real_people = real_or_synthetic_seed(rng, args.synthetic_seed)
    model = IdentityModel(real, real_people)
    vectors, people, centres = collection_of(args.size, real, real_people, model, args.seed)
    bucket, index = args.bucket or f"rekface-bench-{uuid.uuid4().hex[:12]}", "faces"
    client.create_vector_bucket(vectorBucketName=bucket)
    client.create_index(
        vectorBucketName=bucket,
        indexName=index,
        dataType="float32",
        dimension=DIMENSION,
        distanceMetric="cosine",
    )
    out: dict[str, float] = {}
    try:
        rate = WriteRate(args.write_rate)
        t0 = time.perf_counter()
        for start in range(0, len(vectors), PUT_BATCH):
            block = vectors[start : start + PUT_BATCH]
            rate.wait(len(block))
            client.put_vectors(
                vectorBucketName=bucket,
                indexName=index,
                vectors=[
                    {"key": str(start + i), "data": {"float32": v.tolist()}}
                    for i, v in enumerate(block)
                ],
            )
        out["write_s"] = time.perf_counter() - t0
        print(f"wrote {len(vectors):,} vectors in {out['write_s']:.0f} s "
              f"({len(vectors) / out['write_s']:,.0f}/s)", flush=True)  # fmt: skip

        min_cos = load_calibration().cosine_at(80.0) - 1e-6
        picks = rng.choice(len(centres), size=args.probes, replace=False)
        probes = model.faces(centres[picks], rng)
        offset = int(real_people.max()) + 1
        face_ids = np.array([str(i).encode() for i in range(len(vectors))], "S16")
        latency, hit, total = [], 0, 0
        for q, person in zip(probes, offset + picks, strict=True):
            t0 = time.perf_counter()
            got: list[str] = []
            kwargs: dict[str, Any] = {
                "vectorBucketName": bucket,
                "indexName": index,
                "topK": MAX_FACES + OVER_FETCH,
                "queryVector": {"float32": q.tolist()},
                "returnDistance": True,
            }
            while True:
                resp = client.query_vectors(**kwargs)
                got += [v["key"] for v in resp["vectors"] if 1 - v["distance"] >= min_cos]
                if not resp.get("nextToken"):
                    break
                kwargs["nextToken"] = resp["nextToken"]
            latency.append((time.perf_counter() - t0) * 1e3)
            rows, _ = top_k(vectors, q, MAX_FACES, min_cos, face_ids)
            truth = {str(r) for r in rows.tolist() if people[r] == person}
            hit += len(truth & set(got))
            total += len(truth)
        out["recall"] = hit / total if total else float("nan")
        out["matches"] = total
        out["p50_ms"] = float(np.percentile(latency, 50))
        print(f"recall of true same-person matches: {hit}/{total} = {100 * out['recall']:.2f} %")
        print(f"QueryVectors as rekface asks (topK {MAX_FACES + OVER_FETCH}): {stats(latency)}")
        print("(the first queries after a write include the service's cold start: see min/p95)")
    finally:
        if not args.keep:
            client.delete_index(vectorBucketName=bucket, indexName=index)
            client.delete_vector_bucket(vectorBucketName=bucket)
    return out


def main(argv: list[str] | None = None, client: Any = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--bucket", default="")
    parser.add_argument("--write-rate", type=float, default=WRITE_RATE * 0.95)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the bucket and index")
    parser.add_argument(
        "--synthetic-seed", action="store_true", help="do not embed ../shared/faces first"
    )
    args = parser.parse_args(argv)
    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3vectors",
            region_name=args.region,
            config=Config(retries={"mode": "adaptive", "max_attempts": 10}),
        )
    return run(client, args)


if __name__ == "__main__":
    main()
