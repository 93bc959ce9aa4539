"""The pagination-token key on AWS: generated at deploy time in Secrets Manager (moto here), read
once per cold start by the functions that page, never by the others."""

from __future__ import annotations

import json

import boto3
import pytest
from lambda_local import LambdaContext, event, load_handler
from moto import mock_aws

from rekface.adapters import lambda_api, token_secret
from rekface.adapters.token_secret import SECRET_ARN_ENV, lambda_token_secret, paging_operations
from rekface.stores.dynamodb import create_table


@pytest.fixture
def aws(monkeypatch, tmp_path):
    monkeypatch.setenv("REKFACE_STORE", "dynamodb")
    monkeypatch.setenv("REKFACE_TABLE_NAME", "rekface")
    monkeypatch.setenv("REKFACE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("REKFACE_TOKEN_SECRET", raising=False)
    reads: list[str] = []
    real = token_secret.read_secret

    def counted(arn: str, client=None) -> str:
        reads.append(arn)
        return real(arn, client)

    monkeypatch.setattr(token_secret, "read_secret", counted)
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name="us-east-1"), "rekface")
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="rekface-token", SecretString="k" * 64)["ARN"]
        monkeypatch.setenv(SECRET_ARN_ENV, arn)
        lambda_api.reset()
        yield reads, arn
    lambda_api.reset()


def cold_invoke(function: str, body: dict) -> tuple[int, dict]:
    """A new sandbox of ``function`` (the process context is built again) and one request."""
    lambda_api.reset()
    return warm_invoke(function, body)


def warm_invoke(function: str, body: dict) -> tuple[int, dict]:
    evt = event(function)
    evt["body"] = json.dumps(body)
    out = load_handler(function)(evt, LambdaContext())
    return out["statusCode"], json.loads(out["body"])


def test_the_paging_operations_come_from_the_model():
    assert paging_operations() == {"ListCollections", "ListFaces", "ListUsers"}


def test_paging_functions_read_the_secret_once_per_cold_start(aws):
    reads, arn = aws
    for name in ("a", "b", "c"):
        assert cold_invoke("create_collection", {"CollectionId": name})[0] == 200
    assert reads == []  # CreateCollection issues no token: it never reads the secret

    status, page = cold_invoke("list_collections", {"MaxResults": 1})
    assert status == 200 and page["CollectionIds"] == ["a"] and page["NextToken"]
    status, page2 = warm_invoke(
        "list_collections", {"MaxResults": 1, "NextToken": page["NextToken"]}
    )
    assert status == 200 and page2["CollectionIds"] == ["b"]
    assert reads == [arn]  # once for the cold start, not per request

    # Another sandbox (a cold start elsewhere) reads the same key: the token still verifies.
    status, page3 = cold_invoke(
        "list_collections", {"MaxResults": 1, "NextToken": page2["NextToken"]}
    )
    assert status == 200 and page3["CollectionIds"] == ["c"]
    assert reads == [arn, arn]


def test_a_token_signed_with_another_key_is_refused(aws):
    assert cold_invoke("create_collection", {"CollectionId": "x"})[0] == 200
    assert cold_invoke("create_collection", {"CollectionId": "y"})[0] == 200
    status, page = cold_invoke("list_collections", {"MaxResults": 1})
    assert status == 200 and page["NextToken"]
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    secrets.put_secret_value(SecretId=aws[1], SecretString="rotated" * 8)
    status, err = cold_invoke("list_collections", {"MaxResults": 1, "NextToken": page["NextToken"]})
    assert status == 400 and err["__type"] == "InvalidPaginationTokenException"


def test_an_unreadable_secret_is_a_server_fault_without_details(aws, monkeypatch):
    monkeypatch.setenv(SECRET_ARN_ENV, "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone")
    status, err = cold_invoke("list_collections", {})
    assert status == 500 and err["__type"] == "InternalServerError"
    assert "gone" not in json.dumps(err) and "arn:" not in json.dumps(err)
    # A function that does not page is not affected.
    assert cold_invoke("create_collection", {"CollectionId": "fine"})[0] == 200


def test_an_explicit_secret_wins_and_non_paging_functions_get_a_random_key():
    env = {SECRET_ARN_ENV: "arn:aws:secretsmanager:us-east-1:1:secret:x"}
    assert lambda_token_secret("explicit", "ListFaces", env) == "explicit"
    one = lambda_token_secret("", "DetectFaces", env)
    two = lambda_token_secret("", "DetectFaces", env)
    assert one != two and len(one) == 64  # never read, never shared
