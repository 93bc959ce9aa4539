"""Requests as a careful client or an attacker sends them to a live `rekface serve`: signed by
boto3, hand-signed with botocore's own signers (header or query auth, any clock), unsigned, or
changed after signing. Plus the users of the credentials file the tests start servers with."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REGION = "us-east-1"
ACCOUNT = "000000000000"  # Settings.account_id's default
TARGET_PREFIX = "RekognitionService."
BIN = Path(sys.executable).parent

# Statuses of the authentication errors, as AWS's JSON-protocol services answer them:
# - InvalidSignatureException: 400, Rekognition itself ("resulted in a `400 Bad Request` response:
#   {"__type":"InvalidSignatureException","message":"Signature expired: ..."}",
#   github.com/aws/aws-sdk-php/issues/1780; ECS the same, teralytics/prometheus-ecs-discovery#7);
# - UnrecognizedClientException: 400 (DynamoDB, Cognito, ECS: aws-sdk-php#2444,
#   yegor256/s3auth#237);
# - MissingAuthenticationTokenException: 400 from the JSON services (DynamoDB: "Status Code: 400;
#   Error Code: MissingAuthenticationTokenException", amazon-kinesis-client#351, dynalite#105).
#   The 403 of AWS's "common errors" pages is the query protocol's MissingAuthenticationToken.
AUTH_ERROR_STATUS = {
    "InvalidSignatureException": 400,
    "UnrecognizedClientException": 400,
    "MissingAuthenticationTokenException": 400,
}


@dataclass(frozen=True)
class User:
    name: str
    key: str
    secret: str
    policy: dict | None = None


def allow(actions: list[str], resources: list[str] | str = "*") -> dict:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def deny(actions: list[str], resources: list[str] | str = "*") -> dict:
    return {"Effect": "Deny", "Action": actions, "Resource": resources}


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def collection_arn(collection_id: str) -> str:
    return f"arn:aws:rekognition:{REGION}:{ACCOUNT}:collection/{collection_id}"


ADMIN = User("admin", "AKIAREKFACEADMIN0001", "admin-secret-0123456789abcdefghijklmnopq")
SECOND = User("second", "AKIAREKFACESECOND001", "second-secret-0123456789abcdefghijklmnop")
READER = User(
    "reader",
    "AKIAREKFACEREADER001",
    "reader-secret-0123456789abcdefghijklmnop",
    policy(allow(["rekognition:Describe*", "rekognition:List*"])),
)
NO_DELETE = User(
    "no-delete",
    "AKIAREKFACENODELETE1",
    "nodelete-secret-0123456789abcdefghijklmn",
    policy(allow(["rekognition:*"]), deny(["rekognition:DeleteCollection"])),
)
TEAM = User(
    "team",
    "AKIAREKFACETEAM00001",
    "team-secret-0123456789abcdefghijklmnopqr",
    policy(allow(["rekognition:*"], [collection_arn("team-*")])),
)
ALLOWED_BUCKET = "rekface-allowed"
FORBIDDEN_BUCKET = "rekface-forbidden"
S3_READER = User(
    "s3-reader",
    "AKIAREKFACES3READER1",
    "s3reader-secret-0123456789abcdefghijklmn",
    policy(
        allow(["rekognition:*"]),
        allow(["s3:GetObject"], [f"arn:aws:s3:::{ALLOWED_BUCKET}/*"]),
    ),
)
USERS = (ADMIN, SECOND, READER, NO_DELETE, TEAM, S3_READER)
UNKNOWN = User("unknown", "AKIAREKFACEUNKNOWN01", "whatever-secret-0123456789abcdefghijklm")


def write_credentials(directory: Path, users: tuple[User, ...] = USERS) -> Path:
    """An AWS shared-credentials INI with one section per user; policies in files beside it."""
    lines = []
    for user in users:
        lines += [
            f"[{user.name}]",
            f"aws_access_key_id = {user.key}",
            f"aws_secret_access_key = {user.secret}",
        ]
        if user.policy is not None:
            policy_path = directory / f"{user.name}-policy.json"
            policy_path.write_text(json.dumps(user.policy, indent=2))
            lines.append(f"policy_file = {policy_path}")
        lines.append("")
    path = directory / "credentials"
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


def client(url: str, user: User, service: str = "rekognition") -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=user.key,
        aws_secret_access_key=user.secret,
        config=Config(retries={"max_attempts": 1}, read_timeout=120),
    )


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        if self.status < 400:
            return None
        kind = self.json().get("__type", "")
        return kind.rsplit("#", 1)[-1]


def send(method: str, url: str, headers: Mapping[str, str], body: bytes, timeout=120) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=body, headers=dict(headers))
        response = conn.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        conn.close()


def wire_request(url: str, operation: str, body: bytes) -> AWSRequest:
    return AWSRequest(
        method="POST",
        url=url.rstrip("/") + "/",
        data=body,
        headers={
            "X-Amz-Target": TARGET_PREFIX + operation,
            "Content-Type": "application/x-amz-json-1.1",
        },
    )


def sign(
    request: AWSRequest, user: User, *, at: datetime | None = None, query_expires: int = 0
) -> AWSRequest:
    """Sign with botocore's signer, as of ``at`` (UTC, naive) if given; query auth (a presigned
    URL) if ``query_expires`` > 0."""
    credentials = Credentials(user.key, user.secret)
    if query_expires:
        signer = SigV4QueryAuth(credentials, "rekognition", REGION, expires=query_expires)
    else:
        signer = SigV4Auth(credentials, "rekognition", REGION)
    if at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            signer.add_auth(request)
    return request


def send_request(request: AWSRequest, body: bytes | None = None) -> Reply:
    """Send ``request`` as signed, or with ``body`` in place of the signed one."""
    data = request.body if body is None else body
    if isinstance(data, str):
        data = data.encode()
    return send(request.method, request.url, dict(request.headers.items()), data or b"")


def call(url: str, operation: str, body: dict, user: User, **sign_options: Any) -> Reply:
    request = wire_request(url, operation, json.dumps(body).encode())
    return send_request(sign(request, user, **sign_options))


def aws_cli(url: str, user: User, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The AWS CLI of the dev venv with ``user``'s keys and nothing else of the machine's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=user.key,
        AWS_SECRET_ACCESS_KEY=user.secret,
        AWS_DEFAULT_REGION=REGION,
        AWS_PAGER="",
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_CONFIG_FILE=os.devnull,
        AWS_MAX_ATTEMPTS="1",
    )
    return subprocess.run(
        [str(BIN / "aws"), "rekognition", *args, "--endpoint-url", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
