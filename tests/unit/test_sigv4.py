"""SigV4 verification: requests signed by botocore itself, then changed one part at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rekface.adapters.sigv4 import ReceivedRequest, SigV4Verifier
from rekface.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
BODY = b'{"CollectionId":"staff"}'


def verifier(now: datetime = NOW) -> SigV4Verifier:
    return SigV4Verifier({KEY: ("alice", SECRET)}, clock=lambda: now)


def signed(
    body: bytes = BODY,
    *,
    secret: str = SECRET,
    key: str = KEY,
    at: datetime = NOW,
    service: str = "rekognition",
    url: str = "http://127.0.0.1:8765/",
    query: bool = False,
) -> ReceivedRequest:
    """A request as botocore signs it at time ``at``, as the server receives it."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.CreateCollection",
            "Host": url.split("/")[2],
        },
    )
    signer_class = SigV4QueryAuth if query else SigV4Auth
    signer = signer_class(Credentials(key, secret), service, "us-east-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        signer.add_auth(request)
    path, _, raw_query = request.url.split("/", 3)[3].partition("?")
    return ReceivedRequest(
        method="POST",
        raw_path="/" + path,
        raw_query=raw_query,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
    )


def with_(request: ReceivedRequest, **changes) -> ReceivedRequest:
    return ReceivedRequest(**{**request.__dict__, **changes})


def test_a_request_signed_by_botocore_verifies_and_names_its_caller():
    caller = verifier().verify(signed())
    assert (caller.name, caller.access_key_id) == ("alice", KEY)


def test_a_route_path_and_query_authentication_verify():
    verifier().verify(signed(url="http://127.0.0.1:8765/create-collection"))
    # botocore's query signer moves a body into the query string: presigned JSON requests
    # (generate_presigned_url) are sent with an empty body, which the server reads as {}.
    verifier().verify(signed(b"", query=True))


@pytest.mark.parametrize(
    "change",
    [
        lambda r: with_(r, body=r.body.replace(b"staff", b"other")),
        lambda r: with_(r, headers={**r.headers, "x-amz-target": "RekognitionService.X"}),
        lambda r: with_(r, raw_path="/delete-collection"),
        lambda r: with_(r, method="PUT"),
    ],
    ids=["body", "signed header", "path", "method"],
)
def test_any_change_after_signing_is_an_invalid_signature(change):
    with pytest.raises(InvalidSignatureException, match="does not match"):
        verifier().verify(change(signed()))


def test_a_signed_payload_hash_header_must_be_the_body_s_hash():
    """botocore trusts X-Amz-Content-SHA256 as the payload's hash: the verifier checks it."""
    request = signed()
    import hashlib

    claimed = hashlib.sha256(request.body).hexdigest()
    tampered = with_(
        request,
        headers={**request.headers, "x-amz-content-sha256": claimed},
        body=b'{"CollectionId":"other"}',
    )
    with pytest.raises(InvalidSignatureException):
        verifier().verify(tampered)


def test_wrong_secret_unknown_key_and_no_signature():
    with pytest.raises(InvalidSignatureException):
        verifier().verify(signed(secret="not-the-secret"))
    with pytest.raises(UnrecognizedClientException, match="security token"):
        verifier().verify(signed(key="AKIDUNKNOWN"))
    unsigned = with_(signed(), headers={"host": "127.0.0.1:8765"})
    with pytest.raises(MissingAuthenticationTokenException):
        verifier().verify(unsigned)


def test_a_session_token_rekface_did_not_issue_is_an_unknown_client():
    request = signed()
    with pytest.raises(UnrecognizedClientException):
        verifier().verify(with_(request, headers={**request.headers, "x-amz-security-token": "t"}))


def test_clock_skew_over_15_minutes_either_way():
    verifier().verify(signed(at=NOW - timedelta(minutes=14)))
    verifier().verify(signed(at=NOW + timedelta(minutes=14)))
    with pytest.raises(InvalidSignatureException, match="Signature expired"):
        verifier().verify(signed(at=NOW - timedelta(minutes=16)))
    with pytest.raises(InvalidSignatureException, match="not yet current"):
        verifier().verify(signed(at=NOW + timedelta(minutes=16)))


def test_a_presigned_request_expires():
    request = signed(b"", query=True)  # X-Amz-Expires 3600
    verifier(NOW + timedelta(minutes=59)).verify(request)
    with pytest.raises(InvalidSignatureException, match="expired"):
        verifier(NOW + timedelta(minutes=61)).verify(request)


def test_another_service_s_signature_is_refused():
    with pytest.raises(InvalidSignatureException, match="correct service"):
        verifier().verify(signed(service="s3"))


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/rekognition/aws4_request",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc",
        "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=abc",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 " + "x" * 100_000,
    ],
)
def test_a_malformed_authorization_header_is_an_incomplete_signature(authorization):
    request = signed()
    bad = with_(request, headers={**request.headers, "authorization": authorization})
    with pytest.raises(IncompleteSignatureException) as err:
        verifier().verify(bad)
    assert len(err.value.message) < 400
