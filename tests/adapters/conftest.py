"""Fixtures of the Lambda adapter tests."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from rekface.adapters import lambda_api


@pytest.fixture
def samples(photo, monkeypatch, tmp_path):
    """The photos the sample events of events/ name, in the sample bucket on moto; the handlers'
    process context is built inside the mock."""
    monkeypatch.setenv("REKFACE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with mock_aws():
        lambda_api.reset()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="rekface-samples")
        for key, rel in (("face-1", "Paul_Bremer/12"), ("face-2", "Paul_Bremer/5")):
            s3.put_object(
                Bucket="rekface-samples",
                Key=f"photos/{key}.jpg",
                Body=photo(f"identities/{rel}.jpg"),
            )
        yield s3
        lambda_api.reset()
