"""Verify AWS Signature Version 4 on a received request, with botocore's own signer.

The signature is recomputed, not parsed and trusted: the request as received (method, path, query,
the headers named in ``SignedHeaders``, the body) is rebuilt as a botocore ``AWSRequest`` and
botocore's ``SigV4Auth`` computes the canonical request, the string to sign and the signature with
the caller's secret, exactly as boto3 and the AWS CLI did when they sent it. Both forms are
accepted: the ``Authorization`` header and query authentication (``X-Amz-Signature`` & co.).

The errors and their messages are AWS's: they say what AWS says (a missing token, an unknown key,
a signature that does not match, an expired one) and nothing more about which part was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from rekface.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

SERVICE = "rekognition"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # what AWS allows for X-Amz-Expires

_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_UNKNOWN_KEY = "The security token included in the request is invalid."
_AUTH_PARAM = re.compile(r"\s*([A-Za-z]+)=([^,\s]*)\s*")


@dataclass(frozen=True)
class Caller:
    """Who signed a request: the credentials file's section name and its access key id."""

    name: str
    access_key_id: str


@dataclass(frozen=True)
class ReceivedRequest:
    """What the verifier needs of an HTTP request, independent of the server library."""

    method: str
    raw_path: str  # path as sent, percent-encoded, without the query
    raw_query: str  # query string as sent ("" if none)
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class _Signed:
    access_key_id: str
    date: str  # yyyymmdd of the credential scope
    region: str
    service: str
    signed_headers: list[str]
    signature: str
    timestamp: str  # X-Amz-Date
    expires: int | None  # query authentication only


class SigV4Verifier:
    """Checks a request's signature against a table of secrets, keyed by access key id."""

    def __init__(
        self,
        secrets: Mapping[str, tuple[str, str]],  # access key id -> (caller name, secret key)
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secrets = dict(secrets)
        self._clock = clock

    def verify(self, request: ReceivedRequest) -> Caller:
        signed = _parse(request)
        entry = self._secrets.get(signed.access_key_id)
        if entry is None or "x-amz-security-token" in request.headers:
            # Session tokens are not issued by rekface: a request carrying one is from a caller
            # it cannot know, as AWS answers a token it did not issue.
            raise UnrecognizedClientException(_UNKNOWN_KEY)
        name, secret = entry
        if signed.service != SERVICE:
            raise InvalidSignatureException(
                f"Credential should be scoped to correct service: '{SERVICE}'. "
            )
        when = _timestamp(signed.timestamp)
        if signed.date != signed.timestamp[:8]:
            raise InvalidSignatureException(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                "from HTTP: '"
                + signed.date
                + "' != '"
                + signed.timestamp[:8]
                + "', from '"
                + signed.timestamp
                + "'."
            )
        self._check_time(when, signed)
        expected = _signature(request, signed, secret)
        if not hmac.compare_digest(expected, signed.signature):
            raise InvalidSignatureException(_MISMATCH)
        return Caller(name=name, access_key_id=signed.access_key_id)

    def _check_time(self, when: datetime, signed: _Signed) -> None:
        now = self._clock()
        stamp = signed.timestamp
        if signed.expires is not None:
            if now > when + timedelta(seconds=signed.expires):
                raise InvalidSignatureException("Request has expired")
            if when - now > MAX_SKEW:
                raise InvalidSignatureException(
                    f"Signature not yet current: {stamp} is still later than {_fmt(now + MAX_SKEW)}"
                    f" ({_fmt(now)} + 15 min.)"
                )
            return
        if now - when > MAX_SKEW:
            raise InvalidSignatureException(
                f"Signature expired: {stamp} is now earlier than {_fmt(now - MAX_SKEW)}"
                f" ({_fmt(now)} - 15 min.)"
            )
        if when - now > MAX_SKEW:
            raise InvalidSignatureException(
                f"Signature not yet current: {stamp} is still later than {_fmt(now + MAX_SKEW)}"
                f" ({_fmt(now)} + 15 min.)"
            )


def _fmt(when: datetime) -> str:
    return when.strftime(SIGV4_TIMESTAMP)


def _timestamp(raw: str) -> datetime:
    try:
        return datetime.strptime(raw, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise IncompleteSignatureException(
            f"Date must be in ISO-8601 'basic format'. Got '{raw[:32]}'. See "
            "http://en.wikipedia.org/wiki/ISO_8601"
        ) from None


def _parse(request: ReceivedRequest) -> _Signed:
    auth = request.headers.get("authorization")
    query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
    if auth is not None:
        return _parse_header(auth, request.headers)
    if "X-Amz-Algorithm" in query or "X-Amz-Signature" in query:
        return _parse_query(query)
    raise MissingAuthenticationTokenException("Missing Authentication Token")


def _parse_header(auth: str, headers: Mapping[str, str]) -> _Signed:
    algorithm, _, rest = auth.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(
            f"Unsupported authorization type: '{algorithm[:32]}'; only {ALGORITHM} is accepted"
        )
    params: dict[str, str] = {}
    for part in rest.split(","):
        match = _AUTH_PARAM.fullmatch(part)
        if match:
            params[match.group(1)] = match.group(2)
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if not params.get(p)]
    timestamp = headers.get("x-amz-date")
    if missing or not timestamp:
        problems = [f"Authorization header requires '{p}' parameter." for p in missing]
        if not timestamp:
            problems.append("Authorization header requires existence of either a 'X-Amz-Date' or")
            problems[-1] += " a 'Date' header."
        raise IncompleteSignatureException(" ".join(problems))
    return _signed(params["Credential"], params["SignedHeaders"], params["Signature"], timestamp)


def _parse_query(query: Mapping[str, str]) -> _Signed:
    names = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders")
    missing = [n for n in (*names, "X-Amz-Signature") if not query.get(n)]
    if missing:
        raise IncompleteSignatureException(
            " ".join(f"AWS query-string parameters must include '{n}'." for n in missing)
        )
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignatureException(f"X-Amz-Algorithm only supports '{ALGORITHM}'")
    raw_expires = query.get("X-Amz-Expires", "")
    if not raw_expires.isdigit() or not 0 < int(raw_expires) <= MAX_PRESIGN_EXPIRES:
        raise IncompleteSignatureException(
            f"X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGN_EXPIRES}"
        )
    signed = _signed(
        query["X-Amz-Credential"],
        query["X-Amz-SignedHeaders"],
        query["X-Amz-Signature"],
        query["X-Amz-Date"],
    )
    return _Signed(**{**signed.__dict__, "expires": int(raw_expires)})


def _signed(credential: str, signed_headers: str, signature: str, timestamp: str) -> _Signed:
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
        raise IncompleteSignatureException(
            f"Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{credential[:128]}'"
        )
    headers = signed_headers.lower().split(";")
    if "host" not in headers:
        raise InvalidSignatureException(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    return _Signed(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=headers,
        signature=signature,
        timestamp=timestamp,
        expires=None,
    )


def _signature(request: ReceivedRequest, signed: _Signed, secret: str) -> str:
    """botocore's signature of the request as received, with ``secret``."""
    claimed = request.headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(request.body).hexdigest():
        # botocore takes a signed X-Amz-Content-SHA256 header as the payload's hash without
        # reading the body: check it, or a captured request could be replayed with another body.
        raise InvalidSignatureException(_MISMATCH)
    headers = {}
    for name in signed.signed_headers:
        value = request.headers.get(name)
        if value is None:
            # A header the client signed but we did not receive: the signature cannot match.
            raise InvalidSignatureException(_MISMATCH)
        headers[name] = value
    query = request.raw_query
    if signed.expires is not None:
        query = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Signature="))
    # The scheme and authority do not enter the signature (the Host header does); "http" keeps
    # botocore hashing the payload, as every non-S3 client does.
    path = request.raw_path or "/"
    url = "http://rekface" + quote(path, safe="/~%!$&'()*+,;=:@") + (f"?{query}" if query else "")
    aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=request.body)
    aws_request.context["timestamp"] = signed.timestamp
    signer = SigV4Auth(Credentials(signed.access_key_id, secret), signed.service, signed.region)
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
