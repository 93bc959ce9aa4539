"""The seven user functions of functions/, each invoked with its sample event from events/, as the
AWS deployment runs them: REKFACE_STORE=dynamodb on a table (moto), images from S3 (moto).
ClientRequestTokens live in the table, so a retry reaching another Lambda instance (a fresh
process context here) gets the first answer."""

from __future__ import annotations

import json

import boto3
import pytest
from lambda_local import LambdaContext, event, load_handler

from rekface.adapters import lambda_api
from rekface.adapters.bootstrap import build_context
from rekface.adapters.dispatch import Dispatcher
from rekface.stores.dynamodb import DynamoDBStore, create_table

TABLE = "rekface-lambda-users"
SAMPLE_FACE = "11111111-2222-3333-4444-555555555555"  # the FaceId placeholder of the events


@pytest.fixture
def aws(samples, engine, monkeypatch):
    monkeypatch.setenv("REKFACE_STORE", "dynamodb")
    monkeypatch.setenv("REKFACE_TABLE_NAME", TABLE)
    monkeypatch.setenv("REKFACE_ACCOUNT_ID", "123456789012")
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(dynamodb, TABLE)
    new_instance(monkeypatch, engine)
    return dynamodb


def new_instance(monkeypatch, engine) -> None:
    """A cold start: the process context built from the environment (with the session's engine,
    already loaded, instead of loading the models again)."""
    ctx = build_context(engine=engine)
    assert isinstance(ctx.store, DynamoDBStore)
    monkeypatch.setattr(lambda_api, "_dispatcher", Dispatcher(ctx))


def invoke(function: str, face_id: str | None = None, **body_changes) -> tuple[int, dict]:
    evt = event(function)
    if face_id is not None:
        evt["body"] = evt["body"].replace(SAMPLE_FACE, face_id)
    if body_changes:
        evt["body"] = json.dumps(json.loads(evt["body"]) | body_changes)
    out = load_handler(function)(evt, LambdaContext())
    assert out["headers"]["Content-Type"] == "application/x-amz-json-1.1"
    return out["statusCode"], json.loads(out["body"])


def test_user_functions_with_their_sample_events(aws, engine, monkeypatch):
    assert invoke("create_collection")[0] == 200
    face = invoke("index_faces")[1]["FaceRecords"][0]["Face"]["FaceId"]  # photos/face-1.jpg

    assert invoke("create_user") == (200, {})
    assert invoke("create_user") == (200, {})  # the event's token: a retry, not a conflict
    status, body = invoke("create_user", ClientRequestToken="create-paul-2")
    assert status == 400 and body["__type"] == "ConflictException"
    status, body = invoke("create_user", UserId="someone-else")
    assert status == 400 and body["__type"] == "IdempotentParameterMismatchException"
    assert invoke("list_users") == (200, {"Users": [{"UserId": "paul", "UserStatus": "CREATED"}]})

    status, body = invoke("associate_faces", face)
    assert status == 200
    assert body == {
        "AssociatedFaces": [{"FaceId": face}],
        "UnsuccessfulFaceAssociations": [],
        "UserStatus": "ACTIVE",
    }
    # The same request reaching another instance: answered from the token record in the table.
    new_instance(monkeypatch, engine)
    assert invoke("associate_faces", face) == (200, body)
    status, body = invoke("associate_faces")  # the placeholder FaceId, with the same token
    assert status == 400 and body["__type"] == "IdempotentParameterMismatchException"
    status, body = invoke("associate_faces", ClientRequestToken="associate-paul-2")
    assert body["UnsuccessfulFaceAssociations"] == [
        {"FaceId": SAMPLE_FACE, "Reasons": ["FACE_NOT_FOUND"]}
    ]
    items = aws.scan(TableName=TABLE)["Items"]
    user = next(it for it in items if it["PK"]["S"].startswith("U#"))
    assert user["FaceIds"]["SS"] == [face] and user["FaceCount"]["N"] == "1"
    assert sum(1 for it in items if it["PK"]["S"].startswith("T#")) == 3  # 3 tokens used

    # The event's image is the same person's other photo: Paul is found.
    status, body = invoke("search_users_by_image")
    assert status == 200
    assert body["UserMatches"][0]["User"] == {"UserId": "paul", "UserStatus": "ACTIVE"}
    assert body["SearchedFace"]["FaceDetail"]["Confidence"] > 90
    status, body = invoke("search_users")  # by UserId: no other user
    assert (status, body["UserMatches"], body["SearchedUser"]) == (200, [], {"UserId": "paul"})
    status, body = invoke("search_users", UserId=None, FaceId=face)
    assert status == 200 and body["UserMatches"][0]["User"]["UserId"] == "paul"

    status, body = invoke("delete_faces", face)
    assert body["UnsuccessfulFaceDeletions"] == [
        {"FaceId": face, "UserId": "paul", "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]}
    ]
    status, body = invoke("disassociate_faces", face)
    assert (status, body) == (
        200,
        {
            "DisassociatedFaces": [{"FaceId": face}],
            "UnsuccessfulFaceDisassociations": [],
            "UserStatus": "CREATED",
        },
    )
    assert invoke("disassociate_faces", face)[1]["DisassociatedFaces"] == [{"FaceId": face}]
    assert invoke("delete_user") == (200, {})
    assert invoke("delete_user") == (200, {})  # the token's answer, not ResourceNotFound
    status, body = invoke("delete_user", ClientRequestToken="delete-paul-2")
    assert status == 400 and body["__type"] == "ResourceNotFoundException"
    status, body = invoke("search_users")
    assert status == 400 and body["__type"] == "ResourceNotFoundException"
    assert invoke("describe_collection")[1]["UserCount"] == 0

    assert invoke("delete_collection") == (200, {"StatusCode": 200})
    assert aws.scan(TableName=TABLE)["Items"] == []  # faces, users, tokens: all gone
    for function in ("create_user", "list_users", "search_users_by_image"):
        status, body = invoke(function)
        assert status == 400 and body["__type"] == "ResourceNotFoundException"
