"""Who may call `rekface serve`: the credentials file and what each caller may do.

The file has the AWS shared-credentials format, so the same file (or a copy of a section) works
for the client and the server::

    [alice]
    aws_access_key_id = AKIAALICE000000000
    aws_secret_access_key = ...
    policy_file = alice-policy.json   # optional, relative to this file; see rekface.adapters.policy

A caller without ``policy_file`` may call every Rekognition operation on every collection but
read no S3 object: reading a bucket with the server's own AWS credentials is a right the
operator grants explicitly, per caller, by bucket and key.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rekface.adapters.policy import (
    Policy,
    PolicyError,
    load_policy,
    parse_policy,
    required_access,
)
from rekface.adapters.s3 import UNREADABLE
from rekface.adapters.sigv4 import Caller, SigV4Verifier
from rekface.errors import AccessDeniedException, InvalidS3ObjectException

# Every Rekognition action on every resource, and nothing else (no s3:GetObject).
DEFAULT_POLICY: Policy = parse_policy(
    {"Statement": [{"Effect": "Allow", "Action": "rekognition:*", "Resource": "*"}]},
    "the default policy",
)
# What Rekognition answers for an S3 object it cannot read, missing or forbidden alike: the same
# words as the fetcher's, so nothing tells "forbidden" from "absent".
S3_UNREADABLE = UNREADABLE


class CredentialsError(ValueError):
    """The credentials file cannot be used; the message names the file and the section."""


@dataclass(frozen=True)
class User:
    name: str
    access_key_id: str
    secret_access_key: str
    policy: Policy


class Authority:
    """Verifies signatures and enforces each caller's policy."""

    def __init__(self, users: list[User], region: str, account_id: str) -> None:
        self.users = {u.access_key_id: u for u in users}
        self.region = region
        self.account_id = account_id
        self.verifier = SigV4Verifier(
            {u.access_key_id: (u.name, u.secret_access_key) for u in users}
        )

    def authorize(self, caller: Caller, operation: str, request: dict[str, Any]) -> None:
        user = self.users[caller.access_key_id]
        for need in required_access(operation, request, self.region, self.account_id):
            if user.policy.allows(need.action, need.resource):
                continue
            if need.action == "s3:GetObject":
                raise InvalidS3ObjectException(S3_UNREADABLE)
            raise AccessDeniedException(
                f"User: arn:aws:iam::{self.account_id}:user/{user.name} is not authorized to "
                f"perform: {need.action} on resource: {need.resource[:300]}"
            )


def load_users(path: Path) -> list[User]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read: {exc.strerror}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{path}: not an AWS credentials file: {exc}") from None
    users: list[User] = []
    seen: dict[str, str] = {}
    for name in parser.sections():
        section = parser[name]
        key_id = section.get("aws_access_key_id", "").strip()
        secret = section.get("aws_secret_access_key", "").strip()
        if not key_id or not secret:
            raise CredentialsError(
                f"{path}: [{name}] needs aws_access_key_id and aws_secret_access_key"
            )
        if key_id in seen:
            raise CredentialsError(f"{path}: [{name}] reuses the access key id of [{seen[key_id]}]")
        seen[key_id] = name
        policy = DEFAULT_POLICY
        policy_file = section.get("policy_file", "").strip()
        if policy_file:
            try:
                policy = load_policy((path.parent / policy_file).resolve())
            except PolicyError as exc:
                raise CredentialsError(f"{path}: [{name}] policy_file: {exc}") from None
        users.append(User(name, key_id, secret, policy))
    if not users:
        raise CredentialsError(f"{path}: no [section] with credentials")
    return users
