"""benchmarks/s3vectors_scale.py is for the user's own account (no AWS here): it runs end to end
against moto with the exact QueryVectors double, so a user's run fails on the service, not on
the script; with an exact engine its recall must be 100 %."""

from __future__ import annotations

from moto import mock_aws

from benchmarks.s3vectors_scale import main
from tests.engines import S3VectorsDouble


def test_the_s3vectors_benchmark_runs_and_cleans_up():
    import boto3

    with mock_aws():
        raw = boto3.client("s3vectors", region_name="us-east-1")
        client = S3VectorsDouble(raw, page_size=100)
        out = main(
            ["--size", "1200", "--probes", "8", "--synthetic-seed", "--write-rate", "1e9"],
            client=client,
        )
        assert out["matches"] > 0 and out["recall"] == 1.0
        assert client.calls["put_vectors"] == 3  # 1,200 vectors in batches of 500
        assert raw.list_vector_buckets()["vectorBuckets"] == []  # deleted at the end
