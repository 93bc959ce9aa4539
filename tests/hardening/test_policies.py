"""Per-user policies (an IAM JSON subset, `policy_file = path.json` in the user's credentials
section): actions with wildcards, Deny over Allow, collection ARNs, and S3 object ARNs for
`Image.S3Object` reads, which the server makes only for a caller allowed to read that object
(issue 18, second row of the table: the server used to read any bucket with its own rights)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from hardening_wire import (
    ADMIN,
    ALLOWED_BUCKET,
    FORBIDDEN_BUCKET,
    NO_DELETE,
    READER,
    S3_READER,
    TEAM,
    client,
)


def denied(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    error = exc.value.response
    assert error["Error"]["Code"] == "AccessDeniedException", error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400  # as Rekognition documents it
    return exc.value


def error_of(call, *args, **kwargs) -> dict:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    return exc.value.response


def test_a_describe_and_list_only_user_cannot_create(authed):
    client(authed.url, ADMIN).create_collection(CollectionId="policy-shared")
    reader = client(authed.url, READER)
    assert "policy-shared" in reader.list_collections()["CollectionIds"]
    assert reader.describe_collection(CollectionId="policy-shared")["FaceCount"] == 0
    reader.list_faces(CollectionId="policy-shared")
    denied(reader.create_collection, CollectionId="policy-reader")
    denied(reader.delete_collection, CollectionId="policy-shared")
    denied(reader.create_user, CollectionId="policy-shared", UserId="u1")
    assert "policy-reader" not in reader.list_collections()["CollectionIds"]


def test_deny_beats_allow(authed):
    user = client(authed.url, NO_DELETE)
    user.create_collection(CollectionId="policy-kept")  # rekognition:* allows it
    denied(user.delete_collection, CollectionId="policy-kept")  # the Deny statement wins
    assert user.describe_collection(CollectionId="policy-kept")["FaceCount"] == 0


def test_collection_arn_resources(authed):
    """The team may do anything to collections named team-*, nothing to others."""
    team = client(authed.url, TEAM)
    team.create_collection(CollectionId="team-a")
    team.describe_collection(CollectionId="team-a")
    denied(team.create_collection, CollectionId="other-a")
    client(authed.url, ADMIN).create_collection(CollectionId="admins-only")
    denied(team.describe_collection, CollectionId="admins-only")
    denied(team.delete_collection, CollectionId="admins-only")
    team.delete_collection(CollectionId="team-a")


def s3_image(bucket: str, name: str = "face.jpg") -> dict:
    return {"S3Object": {"Bucket": bucket, "Name": name}}


def test_s3_objects_are_read_only_where_the_policy_allows(authed):
    user = client(authed.url, S3_READER)
    faces = user.detect_faces(Image=s3_image(ALLOWED_BUCKET))["FaceDetails"]
    assert len(faces) == 1  # the server reads what the caller may read

    forbidden = error_of(user.detect_faces, Image=s3_image(FORBIDDEN_BUCKET))
    missing = error_of(user.detect_faces, Image=s3_image(ALLOWED_BUCKET, "no-such.jpg"))
    for error in (forbidden, missing):
        assert error["Error"]["Code"] == "InvalidS3ObjectException", error
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    # The same words for "exists but not yours" and "does not exist", as Rekognition answers
    # both: names aside, nothing tells the two apart.
    assert scrub(forbidden) == scrub(missing)


def scrub(error: dict) -> str:
    message = error["Error"]["Message"]
    for name in (ALLOWED_BUCKET, FORBIDDEN_BUCKET, "no-such.jpg", "face.jpg"):
        message = message.replace(name, "<name>")
    return message


def test_with_credentials_and_no_policy_no_bucket_is_readable(authed):
    admin = client(authed.url, ADMIN)  # no policy_file: all of rekognition, no S3
    for bucket in (ALLOWED_BUCKET, FORBIDDEN_BUCKET):
        error = error_of(admin.detect_faces, Image=s3_image(bucket))
        assert error["Error"]["Code"] == "InvalidS3ObjectException", error
    missing = error_of(admin.detect_faces, Image=s3_image(ALLOWED_BUCKET, "no-such.jpg"))
    assert scrub(error) == scrub(missing)


def test_s3_rules_apply_to_every_operation_that_reads_an_image(authed):
    admin = client(authed.url, ADMIN)
    admin.create_collection(CollectionId="policy-s3")
    for call, kwargs in [
        (admin.index_faces, {"CollectionId": "policy-s3", "Image": s3_image(ALLOWED_BUCKET)}),
        (
            admin.search_faces_by_image,
            {"CollectionId": "policy-s3", "Image": s3_image(ALLOWED_BUCKET)},
        ),
        (
            admin.compare_faces,
            {"SourceImage": s3_image(ALLOWED_BUCKET), "TargetImage": s3_image(ALLOWED_BUCKET)},
        ),
    ]:
        error = error_of(call, **kwargs)
        assert error["Error"]["Code"] == "InvalidS3ObjectException", (call, error)
    assert admin.describe_collection(CollectionId="policy-s3")["FaceCount"] == 0
