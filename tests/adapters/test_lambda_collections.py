"""The collection, face and tag functions of functions/, each invoked with its sample event from
events/, as the AWS deployment runs them: REKFACE_STORE=dynamodb on a table (moto), images from S3
(moto; the photos are uploaded at test time, never stored in the repository)."""

from __future__ import annotations

import json

import boto3
import pytest
from lambda_local import LambdaContext, event, load_handler
from moto import mock_aws

from rekface.adapters import lambda_api
from rekface.adapters.bootstrap import build_context
from rekface.adapters.dispatch import Dispatcher
from rekface.stores.dynamodb import DynamoDBStore, create_table

TABLE = "rekface-lambda"
SAMPLE_FACE = "11111111-2222-3333-4444-555555555555"  # the FaceId placeholder of the events


@pytest.fixture
def aws(photo, engine, monkeypatch, tmp_path):
    monkeypatch.setenv("REKFACE_STORE", "dynamodb")
    monkeypatch.setenv("REKFACE_TABLE_NAME", TABLE)
    monkeypatch.setenv("REKFACE_ACCOUNT_ID", "123456789012")  # the events' account
    monkeypatch.setenv("REKFACE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="rekface-samples")
        for key, rel in [
            ("photos/face-1.jpg", "identities/Paul_Bremer/12.jpg"),
            ("photos/face-2.jpg", "identities/Paul_Bremer/5.jpg"),
        ]:
            s3.put_object(Bucket="rekface-samples", Key=key, Body=photo(rel))
        # The process context as a cold start builds it from the environment (the bootstrap),
        # with the session's already-loaded engine instead of loading the models again.
        ctx = build_context(engine=engine)
        assert isinstance(ctx.store, DynamoDBStore)
        monkeypatch.setattr(lambda_api, "_dispatcher", Dispatcher(ctx))
        yield dynamodb
    lambda_api.reset()


def invoke(function: str, evt: dict | None = None, **body_changes) -> tuple[int, dict]:
    evt = evt or event(function)
    if body_changes:
        evt["body"] = json.dumps(json.loads(evt["body"]) | body_changes)
    out = load_handler(function)(evt, LambdaContext())
    assert out["headers"]["Content-Type"] == "application/x-amz-json-1.1"
    return out["statusCode"], json.loads(out["body"])


def with_face(function: str, face_id: str) -> dict:
    evt = event(function)
    evt["body"] = evt["body"].replace(SAMPLE_FACE, face_id)
    return evt


def test_collection_functions_with_their_sample_events(aws):
    status, body = invoke("create_collection")
    assert status == 200
    assert body["CollectionArn"] == "aws:rekognition:us-east-1:123456789012:collection/family"
    assert invoke("create_collection")[1]["__type"] == "ResourceAlreadyExistsException"

    status, body = invoke("index_faces")
    assert status == 200
    (first,) = body["FaceRecords"]
    assert first["Face"]["ExternalImageId"] == "alice"
    status, body = invoke(
        "index_faces",
        Image={"S3Object": {"Bucket": "rekface-samples", "Name": "photos/face-2.jpg"}},
        ExternalImageId="alice-2",
    )
    second = body["FaceRecords"][0]["Face"]["FaceId"]
    assert invoke("describe_collection")[1]["FaceCount"] == 2
    # The faces are in DynamoDB: 2 face items under the collection's incarnation.
    items = aws.scan(TableName=TABLE)["Items"]
    assert sum(1 for it in items if it["PK"]["S"].startswith("F#")) == 2

    status, body = invoke("list_faces")
    assert status == 200 and len(body["Faces"]) == 2
    status, body = invoke("search_faces_by_image")  # photo 2 itself, then photo 1 of the person
    assert status == 200
    assert [m["Face"]["FaceId"] for m in body["FaceMatches"]] == [second, first["Face"]["FaceId"]]
    status, body = invoke("search_faces", with_face("search_faces", first["Face"]["FaceId"]))
    assert status == 200 and [m["Face"]["FaceId"] for m in body["FaceMatches"]] == [second]
    status, body = invoke("search_faces")  # the placeholder FaceId is in no collection
    assert status == 400 and body["__type"] == "InvalidParameterException"

    assert invoke("tag_resource") == (200, {})
    assert invoke("list_tags_for_resource") == (200, {"Tags": {"team": "photos"}})
    assert invoke("untag_resource") == (200, {})
    assert invoke("list_tags_for_resource") == (200, {"Tags": {}})

    status, body = invoke("list_collections")
    assert status == 200 and body["CollectionIds"] == ["family"]
    assert body["FaceModelVersions"] == ["1.0"] and "NextToken" not in body

    status, body = invoke("delete_faces", with_face("delete_faces", second))
    assert status == 200 and body == {"DeletedFaces": [second], "UnsuccessfulFaceDeletions": []}
    status, body = invoke("delete_faces")
    assert body["UnsuccessfulFaceDeletions"] == [
        {"FaceId": SAMPLE_FACE, "Reasons": ["FACE_NOT_FOUND"]}
    ]
    assert invoke("describe_collection")[1]["FaceCount"] == 1

    assert invoke("delete_collection") == (200, {"StatusCode": 200})
    status, body = invoke("describe_collection")
    assert status == 400 and body["__type"] == "ResourceNotFoundException"
    assert aws.scan(TableName=TABLE)["Items"] == []  # faces, directory entry, tombstone: gone
