"""`rekface serve --credentials FILE`: every request carries a valid SigV4 signature for service
`rekognition`, checked the way AWS checks it, and refused with the errors AWS answers so boto3 and
the AWS CLI raise what they raise against AWS (issue 18, first row of the table)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from hardening_wire import (
    ADMIN,
    AUTH_ERROR_STATUS,
    SECOND,
    TARGET_PREFIX,
    UNKNOWN,
    User,
    aws_cli,
    call,
    client,
    send,
    send_request,
    sign,
    wire_request,
)

MAX_ERROR_BYTES = 2048


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # botocore's signer clock is naive UTC


def assert_refused(error: ClientError, code: str) -> None:
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == AUTH_ERROR_STATUS[code]


def assert_tells_nothing(body: bytes) -> None:
    """An authentication error never carries the signature the server computed (nor the
    canonical request): a client learns "wrong", not what would have been right."""
    assert len(body) <= MAX_ERROR_BYTES
    assert re.search(rb"[0-9a-f]{64}", body) is None, body


def test_each_user_of_the_file_is_served(authed):
    for user in (ADMIN, SECOND):
        rekognition = client(authed.url, user)
        rekognition.create_collection(CollectionId=f"sigv4-{user.name}")
        listed = rekognition.list_collections()["CollectionIds"]
        assert f"sigv4-{user.name}" in listed


def test_a_wrong_secret_is_an_invalid_signature(authed):
    impostor = User("impostor", ADMIN.key, "not-" + ADMIN.secret)
    with pytest.raises(ClientError) as exc:
        client(authed.url, impostor).create_collection(CollectionId="sigv4-impostor")
    assert_refused(exc.value, "InvalidSignatureException")
    assert "sigv4-impostor" not in client(authed.url, ADMIN).list_collections()["CollectionIds"]


def test_an_unknown_key_is_an_unrecognized_client(authed):
    with pytest.raises(ClientError) as exc:
        client(authed.url, UNKNOWN).list_collections()
    assert_refused(exc.value, "UnrecognizedClientException")


@pytest.mark.parametrize("operation", ["ListCollections", "CreateCollection", "DeleteCollection"])
def test_an_unsigned_request_is_missing_its_authentication_token(authed, operation):
    reply = send(
        "POST",
        authed.url + "/",
        {"X-Amz-Target": TARGET_PREFIX + operation, "Content-Type": "application/x-amz-json-1.1"},
        json.dumps({"CollectionId": "sigv4-unsigned"}).encode(),
    )
    assert reply.error_code == "MissingAuthenticationTokenException", reply.body[:300]
    assert reply.status == AUTH_ERROR_STATUS["MissingAuthenticationTokenException"]
    assert_tells_nothing(reply.body)


def test_a_garbage_authorization_header_is_refused(authed):
    reply = send(
        "POST",
        authed.url + "/",
        {
            "X-Amz-Target": TARGET_PREFIX + "ListCollections",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=garbage, Signature=garbage",
            "X-Amz-Date": "20260101T000000Z",
        },
        b"{}",
    )
    assert 400 <= reply.status < 500
    assert reply.error_code in {
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "UnrecognizedClientException",
    }
    assert_tells_nothing(reply.body)


def test_signatures_within_15_minutes_of_the_servers_clock_are_accepted(authed):
    for skew in (timedelta(minutes=-10), timedelta(minutes=10)):
        reply = call(authed.url, "ListCollections", {}, ADMIN, at=utc_now() + skew)
        assert reply.status == 200, (skew, reply.body[:300])


@pytest.mark.parametrize("skew_minutes", [-16, 16])
def test_a_signature_16_minutes_off_is_refused(authed, skew_minutes):
    at = utc_now() + timedelta(minutes=skew_minutes)
    reply = call(authed.url, "CreateCollection", {"CollectionId": "sigv4-skewed"}, ADMIN, at=at)
    assert reply.error_code == "InvalidSignatureException", reply.body[:300]
    assert reply.status == AUTH_ERROR_STATUS["InvalidSignatureException"]
    assert_tells_nothing(reply.body)


def test_a_body_changed_after_signing_is_refused(authed):
    signed = sign(
        wire_request(authed.url, "CreateCollection", b'{"CollectionId": "sigv4-signed"}'), ADMIN
    )
    reply = send_request(signed, body=b'{"CollectionId": "sigv4-swapped"}')
    assert reply.error_code == "InvalidSignatureException", reply.body[:300]
    assert_tells_nothing(reply.body)
    assert "sigv4-swapped" not in client(authed.url, ADMIN).list_collections()["CollectionIds"]
    assert send_request(signed).status == 200  # the request as signed is fine


def test_a_changed_target_header_is_refused(authed):
    signed = sign(wire_request(authed.url, "ListCollections", b"{}"), ADMIN)
    signed.headers.replace_header("X-Amz-Target", TARGET_PREFIX + "DeleteCollection")
    reply = send_request(signed, body=b'{"CollectionId": "sigv4-admin"}')
    assert reply.error_code == "InvalidSignatureException", reply.body[:300]


def test_query_auth_presigned_requests(authed):
    """SigV4 in the query string (botocore's SigV4QueryAuth): accepted when valid, refused when
    the signature or the key is wrong."""
    good = sign(wire_request(authed.url, "ListCollections", b""), SECOND, query_expires=300)
    assert "X-Amz-Signature=" in good.url and "Authorization" not in good.headers
    reply = send_request(good)
    assert reply.status == 200, reply.body[:300]
    assert "CollectionIds" in reply.json()

    forged = sign(wire_request(authed.url, "ListCollections", b""), SECOND, query_expires=300)
    forged.url = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "0" * 64, forged.url)
    assert send_request(forged).error_code == "InvalidSignatureException"

    unknown = sign(wire_request(authed.url, "ListCollections", b""), UNKNOWN, query_expires=300)
    assert send_request(unknown).error_code == "UnrecognizedClientException"


def test_an_expired_presigned_request_is_refused(authed):
    request = wire_request(authed.url, "ListCollections", b"")
    signed = sign(request, ADMIN, at=utc_now() - timedelta(minutes=10), query_expires=60)
    reply = send_request(signed)
    assert 400 <= reply.status < 500
    assert reply.error_code in {"InvalidSignatureException", "AccessDeniedException"}, reply.body


def test_health_needs_no_signature(authed):
    assert send("GET", authed.url + "/health", {}, b"").status == 200


def test_the_aws_cli_with_right_wrong_and_unknown_keys(authed):
    ok = aws_cli(authed.url, ADMIN, "list-collections")
    assert ok.returncode == 0, ok.stderr
    assert "CollectionIds" in json.loads(ok.stdout)

    wrong = aws_cli(authed.url, User("wrong", ADMIN.key, ADMIN.secret[::-1]), "list-collections")
    assert wrong.returncode != 0
    assert "InvalidSignatureException" in wrong.stderr, wrong.stderr

    unknown = aws_cli(authed.url, UNKNOWN, "list-collections")
    assert unknown.returncode != 0
    assert "UnrecognizedClientException" in unknown.stderr, unknown.stderr
