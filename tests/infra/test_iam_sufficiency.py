"""The table permissions the stack grants per ``Access`` are enough for what each operation's
code really calls: every operation runs on DynamoDB (moto) through a client that refuses, like
IAM would, any DynamoDB action outside its function's grant. (The Template tests check the grant
is no wider; this checks it is not too narrow.)"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from rekface_infra.functions import TABLE_ACTIONS

from rekface import operations
from rekface.adapters.bootstrap import build_store
from rekface.adapters.s3 import S3ImageFetcher
from rekface.operations.context import Context
from rekface.search.memory import InMemoryExactSearch
from rekface.spec.operations import BY_NAME, Access
from rekface.stores.dynamodb import create_table

TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
TRANSACT["ConditionCheck"] = "ConditionCheckItem"


def iam_actions(operation: str, params: dict[str, Any]) -> set[str]:
    """The IAM actions a DynamoDB API call needs (transactions: one per item action)."""
    if operation == "TransactWriteItems":
        return {f"dynamodb:{TRANSACT[k]}" for item in params["TransactItems"] for k in item}
    if operation == "TransactGetItems":
        return {"dynamodb:GetItem"}
    return {f"dynamodb:{operation}"}


def restricted_client(allowed: set[str], denied: list[str]):
    client = boto3.client("dynamodb", region_name="us-east-1")

    def check(model, params, **_kw):
        missing = iam_actions(model.name, params) - allowed
        if missing:
            denied.extend(sorted(missing))
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": str(missing)}}, model.name
            )

    client.meta.events.register("before-parameter-build.dynamodb.*", check)
    return client


def scenario(a: bytes, b: bytes, arn: str) -> list[tuple[str, dict[str, Any]]]:
    """One request per operation, in an order where each finds what it needs."""
    c = {"CollectionId": "family"}
    return [
        ("CreateCollection", c),
        ("CreateCollection", {"CollectionId": "doomed"}),
        ("DescribeCollection", c),
        ("ListCollections", {}),
        ("DetectFaces", {"Image": {"Bytes": a}}),
        ("CompareFaces", {"SourceImage": {"Bytes": a}, "TargetImage": {"Bytes": b}}),
        ("IndexFaces", {**c, "Image": {"Bytes": a}, "ExternalImageId": "a"}),
        ("IndexFaces", {**c, "Image": {"Bytes": b}, "ExternalImageId": "b"}),
        ("ListFaces", c),
        ("SearchFaces", {**c, "FaceId": "<face a>"}),
        ("SearchFacesByImage", {**c, "Image": {"Bytes": b}}),
        ("CreateUser", {**c, "UserId": "paul", "ClientRequestToken": "t-1"}),
        ("CreateUser", {**c, "UserId": "gone"}),
        ("ListUsers", c),
        ("AssociateFaces", {**c, "UserId": "paul", "FaceIds": ["<face a>"]}),
        ("SearchUsers", {**c, "UserId": "paul"}),
        ("SearchUsersByImage", {**c, "Image": {"Bytes": b}}),
        ("DisassociateFaces", {**c, "UserId": "paul", "FaceIds": ["<face a>"]}),
        ("DeleteUser", {**c, "UserId": "gone"}),
        ("TagResource", {"ResourceArn": arn, "Tags": {"team": "ops"}}),
        ("ListTagsForResource", {"ResourceArn": arn}),
        ("UntagResource", {"ResourceArn": arn, "TagKeys": ["team"]}),
        ("DeleteFaces", {**c, "FaceIds": ["<face b>"]}),
        ("DeleteCollection", {"CollectionId": "doomed"}),
    ]


def test_each_function_can_do_its_job_with_its_grant(settings, engine, photo, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    a = photo("identities/Paul_Bremer/12.jpg")
    b = photo("identities/Paul_Bremer/5.jpg")
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name="us-east-1"), "rekface")
        aws = replace(settings, store="dynamodb", table_name="rekface")
        contexts: dict[Access, Context] = {}
        denied: list[str] = []
        for access, allowed in TABLE_ACTIONS.items():
            store = build_store(aws, restricted_client(set(allowed), denied))
            contexts[access] = Context(
                aws, engine, S3ImageFetcher(), store=store, search=InMemoryExactSearch(store)
            )
        faces: dict[str, str] = {}
        arn = f"arn:aws:rekognition:{aws.region}:{aws.account_id}:collection/family"
        ran = []
        for name, request in scenario(a, b, arn):
            if name not in operations.HANDLERS:
                continue  # not served yet by this version: nothing to grant
            if "FaceIds" in request:
                request = {**request, "FaceIds": [faces[f] for f in request["FaceIds"]]}
            if "FaceId" in request:
                request = {**request, "FaceId": faces[request["FaceId"]]}
            ctx = contexts[BY_NAME[name].access]
            try:
                response = operations.run(ctx, name, request)
            except Exception as exc:
                pytest.fail(f"{name} with {BY_NAME[name].access}: {exc!r} (denied: {denied})")
            assert denied == [], f"{name} needed {denied}"
            if name == "IndexFaces":
                faces[f"<face {request['ExternalImageId']}>"] = response["FaceRecords"][0]["Face"][
                    "FaceId"
                ]
            ran.append(name)
        assert {"CreateCollection", "IndexFaces", "SearchFaces", "DeleteCollection"} <= set(ran)
        print("ran with least privilege:", ", ".join(dict.fromkeys(ran)))
