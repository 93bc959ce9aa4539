"""The collection, face and tag operations through ``operations.run`` (validation included), with
the real engine on real photos, on the embedded store; the same calls on DynamoDB (moto) for the
image operations. Every response is checked against the botocore output shape."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime

import boto3
import pytest
from moto import mock_aws

from rekface import operations
from rekface.adapters.bootstrap import build_context
from rekface.errors import (
    InvalidPaginationTokenException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from rekface.stores.dynamodb import create_table
from tests.operations.calls import call, img

ALICE = ["identities/Ann_Veneman/1.jpg", "identities/Ann_Veneman/2.jpg"]
BOB = ["identities/Andy_Roddick/1.jpg", "identities/Andy_Roddick/2.jpg"]
CROWD = "groups/dlib_bald_guys.jpg"  # 24 faces
NO_FACE = "nofaces/dlib_dog.jpg"


@pytest.fixture
def cid(ctx):
    collection_id = f"ops-{uuid.uuid4().hex[:12]}"
    yield collection_id
    with contextlib.suppress(ResourceNotFoundException):
        operations.run(ctx, "DeleteCollection", {"CollectionId": collection_id})


def test_collection_operations(ctx, cid):
    created = call(ctx, "CreateCollection", CollectionId=cid, Tags={"team": "face"})
    assert created == {
        "StatusCode": 200,
        "CollectionArn": f"aws:rekognition:us-east-1:000000000000:collection/{cid}",
        "FaceModelVersion": "1.0",
    }
    described = call(ctx, "DescribeCollection", CollectionId=cid)
    assert described["FaceCount"] == 0 and described["UserCount"] == 0
    assert described["CollectionARN"] == created["CollectionArn"]
    assert isinstance(described["CreationTimestamp"], datetime)
    listed = call(ctx, "ListCollections")
    assert cid in listed["CollectionIds"]
    assert len(listed["FaceModelVersions"]) == len(listed["CollectionIds"])
    with pytest.raises(ResourceAlreadyExistsException, match=f"{cid} already exists"):
        call(ctx, "CreateCollection", CollectionId=cid)
    assert call(ctx, "DeleteCollection", CollectionId=cid) == {"StatusCode": 200}
    assert cid not in call(ctx, "ListCollections")["CollectionIds"]


def test_list_collections_pages(ctx):
    ids = [f"page-{uuid.uuid4().hex[:8]}-{i}" for i in range(5)]
    for i in ids:
        call(ctx, "CreateCollection", CollectionId=i)
    try:
        seen, token = [], None
        while True:
            req = {"MaxResults": 2} | ({"NextToken": token} if token else {})
            page = call(ctx, "ListCollections", **req)
            seen += page["CollectionIds"]
            token = page.get("NextToken")
            if not token:
                break
        assert [s for s in seen if s in ids] == sorted(ids)
        with pytest.raises(InvalidPaginationTokenException):
            call(ctx, "ListCollections", NextToken=token or "forged")
    finally:
        for i in ids:
            call(ctx, "DeleteCollection", CollectionId=i)


def test_tag_operations(ctx, cid):
    arn = call(ctx, "CreateCollection", CollectionId=cid)["CollectionArn"]
    call(ctx, "TagResource", ResourceArn=arn, Tags={"a": "1", "b": "2"})
    call(ctx, "TagResource", ResourceArn="arn:" + arn, Tags={"c": "3"})  # "arn:" form too
    call(ctx, "UntagResource", ResourceArn=arn, TagKeys=["a"])
    assert call(ctx, "ListTagsForResource", ResourceArn=arn) == {"Tags": {"b": "2", "c": "3"}}
    with pytest.raises(ServiceQuotaExceededException):
        call(ctx, "TagResource", ResourceArn=arn, Tags={f"k{i}": "v" for i in range(49)})
    other_account = arn.replace("000000000000", "123456789012")
    for bad, error in [
        (other_account, ResourceNotFoundException),
        (arn.replace("us-east-1", "eu-west-1"), ResourceNotFoundException),
        (arn + "-missing", ResourceNotFoundException),
        ("aws:rekognition:us-east-1:000000000000:project/p/1", ResourceNotFoundException),
        ("this-is-not-an-arn-at-all", InvalidParameterException),
    ]:
        with pytest.raises(error):
            call(ctx, "ListTagsForResource", ResourceArn=bad)
    with pytest.raises(InvalidParameterException, match="aws:"):
        call(ctx, "TagResource", ResourceArn=arn, Tags={"aws:reserved": "x"})


def test_requests_the_model_refuses(ctx, cid):
    call(ctx, "CreateCollection", CollectionId=cid)
    bad = [
        ("CreateCollection", {"CollectionId": "has space"}),
        ("CreateCollection", {"CollectionId": "x" * 256}),
        ("DescribeCollection", {}),
        ("ListCollections", {"MaxResults": 4097}),
        ("ListFaces", {"CollectionId": cid, "MaxResults": -1}),
        ("ListFaces", {"CollectionId": cid, "FaceIds": ["not-a-uuid"]}),
        ("ListFaces", {"CollectionId": cid, "UserId": "bad user"}),
        ("DeleteFaces", {"CollectionId": cid, "FaceIds": []}),
        ("IndexFaces", {"CollectionId": cid, "Image": img(ALICE[0]), "MaxFaces": 0}),
        ("IndexFaces", {"CollectionId": cid, "Image": img(ALICE[0]), "ExternalImageId": "a b"}),
        ("IndexFaces", {"CollectionId": cid, "Image": img(ALICE[0]), "QualityFilter": "BEST"}),
        ("SearchFaces", {"CollectionId": cid, "FaceId": str(uuid.uuid4()), "MaxFaces": 4097}),
        (
            "SearchFacesByImage",
            {"CollectionId": cid, "Image": img(ALICE[0]), "FaceMatchThreshold": 100.5},
        ),
        ("TagResource", {"ResourceArn": "short", "Tags": {}}),
    ]
    for op, request in bad:
        with pytest.raises(InvalidParameterException, match="validation error"):
            operations.run(ctx, op, request)


def test_missing_collection_is_resource_not_found(ctx):
    cid = f"missing-{uuid.uuid4().hex[:8]}"
    face = str(uuid.uuid4())
    for op, request in [
        ("DescribeCollection", {}),
        ("DeleteCollection", {}),
        ("IndexFaces", {"Image": img(ALICE[0])}),
        ("ListFaces", {}),
        ("DeleteFaces", {"FaceIds": [face]}),
        ("SearchFaces", {"FaceId": face}),
        ("SearchFacesByImage", {"Image": img(ALICE[0])}),
    ]:
        with pytest.raises(ResourceNotFoundException, match=f"{cid} does not exist"):
            operations.run(ctx, op, {"CollectionId": cid, **request})


def test_index_faces_max_faces_quality_and_attributes(ctx, cid):
    call(ctx, "CreateCollection", CollectionId=cid)
    out = call(
        ctx,
        "IndexFaces",
        CollectionId=cid,
        Image=img(CROWD),
        MaxFaces=3,
        ExternalImageId="crowd:1",
        DetectionAttributes=["DEFAULT"],
    )
    records, unindexed = out["FaceRecords"], out["UnindexedFaces"]
    assert len(records) == 3 and out["FaceModelVersion"] == "1.0"
    assert len(unindexed) == 21 and all(u["Reasons"] == ["EXCEEDS_MAX_FACES"] for u in unindexed)
    areas = [
        r["Face"]["BoundingBox"]["Width"] * r["Face"]["BoundingBox"]["Height"] for r in records
    ]
    assert areas == sorted(areas, reverse=True)  # largest first
    image_ids = {r["Face"]["ImageId"] for r in records}
    assert len(image_ids) == 1
    for r in records:
        face, detail = r["Face"], r["FaceDetail"]
        assert face["ExternalImageId"] == "crowd:1" and face["IndexFacesModelVersion"] == "1.0"
        assert face["BoundingBox"] == pytest.approx(detail["BoundingBox"], abs=1e-6)
        assert {"Landmarks", "Pose", "Quality", "Confidence"} <= detail.keys()
    first_ids = [r["Face"]["FaceId"] for r in records]
    # The same image with the same ExternalImageId again: the same ids, nothing stored twice;
    # with MaxFaces 5 the two next largest faces are added.
    same = call(
        ctx, "IndexFaces", CollectionId=cid, Image=img(CROWD), MaxFaces=5, ExternalImageId="crowd:1"
    )
    assert [r["Face"]["FaceId"] for r in same["FaceRecords"]][:3] == first_ids
    assert call(ctx, "DescribeCollection", CollectionId=cid)["FaceCount"] == 5
    # Without the ExternalImageId it is another image for the service: new ids.
    other = call(ctx, "IndexFaces", CollectionId=cid, Image=img(CROWD), MaxFaces=5)
    assert not {r["Face"]["FaceId"] for r in other["FaceRecords"]} & set(first_ids)
    assert call(ctx, "DescribeCollection", CollectionId=cid)["FaceCount"] == 10
    # A quality bar: faces refused for it are reported with their reasons, not indexed.
    strict = call(
        ctx,
        "IndexFaces",
        CollectionId=cid,
        Image=img("groups/deepface_selfie-many-people.jpg"),
        QualityFilter="HIGH",
    )
    reasons = [u["Reasons"] for u in strict["UnindexedFaces"]]
    assert reasons and all(r and "EXCEEDS_MAX_FACES" not in r for r in reasons)
    assert len(strict["FaceRecords"]) + len(reasons) == 6
    # No face: nothing indexed, not an error.
    empty = call(ctx, "IndexFaces", CollectionId=cid, Image=img(NO_FACE))
    assert empty["FaceRecords"] == [] and empty["UnindexedFaces"] == []


def test_list_and_delete_faces(ctx, cid):
    call(ctx, "CreateCollection", CollectionId=cid)
    ids = [
        r["Face"]["FaceId"]
        for r in call(ctx, "IndexFaces", CollectionId=cid, Image=img(CROWD))["FaceRecords"]
    ]
    assert len(ids) == 24
    seen, token = [], None
    while True:
        req = {"CollectionId": cid, "MaxResults": 10} | ({"NextToken": token} if token else {})
        page = call(ctx, "ListFaces", **req)
        seen += [f["FaceId"] for f in page["Faces"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == sorted(ids)
    only = call(ctx, "ListFaces", CollectionId=cid, FaceIds=ids[:2])["Faces"]
    assert sorted(f["FaceId"] for f in only) == sorted(ids[:2])
    missing = str(uuid.uuid4())
    out = operations.run(ctx, "DeleteFaces", {"CollectionId": cid, "FaceIds": [*ids[:3], missing]})
    assert out["DeletedFaces"] == ids[:3]
    assert out["UnsuccessfulFaceDeletions"] == [{"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]}]
    assert call(ctx, "DescribeCollection", CollectionId=cid)["FaceCount"] == 21
    with pytest.raises(InvalidPaginationTokenException):
        call(ctx, "ListFaces", CollectionId=cid, NextToken=token or "x" * 40)


def test_search_faces_by_image_and_by_id(ctx, cid, engine):
    call(ctx, "CreateCollection", CollectionId=cid)
    alice = call(ctx, "IndexFaces", CollectionId=cid, Image=img(ALICE[0]), ExternalImageId="alice")
    call(ctx, "IndexFaces", CollectionId=cid, Image=img(BOB[0]), ExternalImageId="bob")
    call(ctx, "IndexFaces", CollectionId=cid, Image=img(CROWD), ExternalImageId="crowd")
    found = call(ctx, "SearchFacesByImage", CollectionId=cid, Image=img(ALICE[1]))
    assert found["FaceModelVersion"] == "1.0" and found["SearchedFaceConfidence"] > 90
    best = found["FaceMatches"][0]
    assert best["Face"]["ExternalImageId"] == "alice" and best["Similarity"] >= 80
    # The same calibrated Similarity as CompareFaces of the two photos.
    compared = call(ctx, "CompareFaces", SourceImage=img(ALICE[1]), TargetImage=img(ALICE[0]))
    assert best["Similarity"] == pytest.approx(compared["FaceMatches"][0]["Similarity"], abs=1e-3)
    assert found["SearchedFaceBoundingBox"] == pytest.approx(
        compared["SourceImageFace"]["BoundingBox"], abs=1e-6
    )
    # Everything, ranked: threshold 0 and MaxFaces limit.
    ranked = call(
        ctx, "SearchFacesByImage", CollectionId=cid, Image=img(ALICE[1]),
        FaceMatchThreshold=0, MaxFaces=10,
    )["FaceMatches"]  # fmt: skip
    sims = [m["Similarity"] for m in ranked]
    assert len(ranked) == 10 and sims == sorted(sims, reverse=True)
    assert ranked[0] == best
    # SearchFaces by the stored face: the face itself is not returned.
    alice_id = alice["FaceRecords"][0]["Face"]["FaceId"]
    by_id = call(ctx, "SearchFaces", CollectionId=cid, FaceId=alice_id, FaceMatchThreshold=0)
    assert by_id["SearchedFaceId"] == alice_id
    assert alice_id not in [m["Face"]["FaceId"] for m in by_id["FaceMatches"]]
    assert len(by_id["FaceMatches"]) == 25  # bob + the crowd
    with pytest.raises(InvalidParameterException, match="not found"):
        call(ctx, "SearchFaces", CollectionId=cid, FaceId=str(uuid.uuid4()))
    with pytest.raises(InvalidParameterException, match="no faces"):
        call(ctx, "SearchFacesByImage", CollectionId=cid, Image=img(NO_FACE))
    # After DeleteFaces the face is no longer found.
    call(ctx, "DeleteFaces", CollectionId=cid, FaceIds=[alice_id])
    again = call(ctx, "SearchFacesByImage", CollectionId=cid, Image=img(ALICE[1]))
    assert "alice" not in [m["Face"].get("ExternalImageId") for m in again["FaceMatches"]]


@pytest.fixture
def dynamo_ctx(engine, tmp_path, monkeypatch):
    """A context on DynamoDB (moto), built by the bootstrap from REKFACE_STORE=dynamodb."""
    monkeypatch.setenv("REKFACE_STORE", "dynamodb")
    monkeypatch.setenv("REKFACE_TABLE_NAME", "rekface-ops")
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name="us-east-1"), "rekface-ops")
        yield build_context(engine=engine)


def test_image_operations_on_dynamodb(dynamo_ctx):
    ctx = dynamo_ctx
    assert type(ctx.store).__name__ == "DynamoDBStore"
    call(ctx, "CreateCollection", CollectionId="people")
    for rel, name in [(ALICE[0], "alice"), (BOB[0], "bob")]:
        call(ctx, "IndexFaces", CollectionId="people", Image=img(rel), ExternalImageId=name)
    out = call(ctx, "IndexFaces", CollectionId="people", Image=img(CROWD), MaxFaces=100)
    assert len(out["FaceRecords"]) == 24
    assert call(ctx, "DescribeCollection", CollectionId="people")["FaceCount"] == 26
    for probe, name in [(ALICE[1], "alice"), (BOB[1], "bob")]:
        found = call(ctx, "SearchFacesByImage", CollectionId="people", Image=img(probe))
        assert found["FaceMatches"][0]["Face"]["ExternalImageId"] == name
    faces = call(ctx, "ListFaces", CollectionId="people", MaxResults=30)["Faces"]
    assert len(faces) == 26 and [f["FaceId"] for f in faces] == sorted(f["FaceId"] for f in faces)
    call(ctx, "DeleteCollection", CollectionId="people")
    with pytest.raises(ResourceNotFoundException):
        call(ctx, "DescribeCollection", CollectionId="people")
