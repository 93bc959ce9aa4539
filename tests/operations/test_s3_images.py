"""Image.S3Object: objects read from S3 (moto), with the service's errors."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from rekface import operations
from rekface.adapters.s3 import S3ImageFetcher
from rekface.errors import ImageTooLargeException, InvalidS3ObjectException
from rekface.operations.context import Context


@pytest.fixture
def s3_ctx(ctx, photo):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="photos")
        s3.put_object(Bucket="photos", Key="bremer.jpg", Body=photo("identities/Paul_Bremer/5.jpg"))
        yield Context(settings=ctx.settings, engine=ctx.engine, images=S3ImageFetcher(s3)), s3


def detect(ctx, s3_object):
    return operations.run(ctx, "DetectFaces", {"Image": {"S3Object": s3_object}})


def test_detect_from_s3(s3_ctx):
    ctx, _ = s3_ctx
    assert len(detect(ctx, {"Bucket": "photos", "Name": "bremer.jpg"})["FaceDetails"]) == 1


def test_object_version(s3_ctx, photo):
    ctx, s3 = s3_ctx
    s3.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="photos", Key="v.jpg", Body=photo("identities/Paul_Bremer/5.jpg"))
    s3.put_object(Bucket="photos", Key="v.jpg", Body=photo("nofaces/skimage_rocket.jpg"))
    assert detect(ctx, {"Bucket": "photos", "Name": "v.jpg"})["FaceDetails"] == []
    old = {"Bucket": "photos", "Name": "v.jpg", "Version": v1["VersionId"]}
    assert len(detect(ctx, old)["FaceDetails"]) == 1


@pytest.mark.parametrize(
    "s3_object",
    [
        {"Bucket": "photos", "Name": "missing.jpg"},
        {"Bucket": "no-such-bucket", "Name": "bremer.jpg"},
        {"Bucket": "photos", "Name": "bremer.jpg", "Version": "nonexistentversion"},
    ],
)
def test_unreadable_objects(s3_ctx, s3_object):
    ctx, _ = s3_ctx
    with pytest.raises(InvalidS3ObjectException, match="Unable to get object metadata from S3"):
        detect(ctx, s3_object)


def test_objects_over_15_mb_are_too_large(s3_ctx, photo):
    ctx, s3 = s3_ctx
    big = photo("identities/Paul_Bremer/5.jpg") + b"\0" * (15 * 1024 * 1024)
    s3.put_object(Bucket="photos", Key="big.jpg", Body=big)
    with pytest.raises(ImageTooLargeException, match="maximum"):
        detect(ctx, {"Bucket": "photos", "Name": "big.jpg"})
    # Between 5 and 15 MB is fine from S3 (the limit for Bytes is 5 MB).
    s3.put_object(Bucket="photos", Key="mid.jpg", Body=big[: 6 * 1024 * 1024])
    assert len(detect(ctx, {"Bucket": "photos", "Name": "mid.jpg"})["FaceDetails"]) == 1


def test_missing_and_forbidden_objects_get_the_same_message(s3_ctx):
    """Rekognition answers the same text whatever S3 said, so a caller cannot probe which buckets
    and keys exist (issue 18); the reason goes to the server's log only."""
    from botocore.stub import Stubber

    from rekface.adapters.credentials import S3_UNREADABLE
    from rekface.adapters.s3 import UNREADABLE

    ctx, s3 = s3_ctx
    messages = set()
    for s3_object in (
        {"Bucket": "photos", "Name": "missing.jpg"},
        {"Bucket": "no-such-bucket", "Name": "bremer.jpg"},
        {"Bucket": "photos", "Name": "bremer.jpg", "Version": "nonexistentversion"},
    ):
        with pytest.raises(InvalidS3ObjectException) as err:
            detect(ctx, s3_object)
        messages.add(str(err.value))
    for code, status in (("AccessDenied", 403), ("AllAccessDisabled", 403), ("NoSuchKey", 404)):
        with Stubber(s3) as stub:
            stub.add_client_error("get_object", code, "S3's own words", status)
            with pytest.raises(InvalidS3ObjectException) as err:
                detect(ctx, {"Bucket": "secret", "Name": "x.jpg"})
        messages.add(str(err.value))
    # One text, the one the credentials' policy check answers too.
    assert messages == {UNREADABLE} == {S3_UNREADABLE}
