"""A subset of IAM policies, evaluated for each request of a signed caller.

Supported, as in IAM: ``Version``; ``Statement`` (one or a list) of ``Effect`` Allow/Deny,
``Action`` (``rekognition:<Operation>`` and ``s3:GetObject``, ``*`` and ``?`` wildcards, case
insensitive) and ``Resource`` (collection ARNs, ``arn:aws:s3:::bucket/key`` and ``*``, wildcards,
case sensitive). An explicit Deny wins over any Allow; what no statement allows is denied.
Anything else (``NotAction``, ``NotResource``, ``Condition``, ``Principal``) is refused when the
file is loaded, because ignoring it would grant more than the policy's author meant.

Resources per action, as Rekognition's IAM reference defines them: an operation on a collection
(or its users and faces) acts on ``arn:aws:rekognition:<region>:<account>:collection/<id>``;
the tag operations on their ``ResourceArn``; DetectFaces, CompareFaces and ListCollections on
``*`` (they support no resource-level permission, so only ``"Resource": "*"`` grants them). An
``S3Object`` image is an ``s3:GetObject`` of ``arn:aws:s3:::<bucket>/<key>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STATEMENT_KEYS = {"Sid", "Effect", "Action", "Resource"}
_IMAGE_MEMBERS = ("Image", "SourceImage", "TargetImage")


class PolicyError(ValueError):
    """A policy file rekface cannot enforce exactly; the message names the file and the part."""


@dataclass(frozen=True)
class Statement:
    allow: bool
    actions: tuple[re.Pattern[str], ...]
    resources: tuple[re.Pattern[str], ...]

    def matches(self, action: str, resource: str) -> bool:
        return any(a.fullmatch(action) for a in self.actions) and any(
            r.fullmatch(resource) for r in self.resources
        )


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]

    def allows(self, action: str, resource: str) -> bool:
        matching = [s for s in self.statements if s.matches(action, resource)]
        return bool(matching) and all(s.allow for s in matching)


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _strings(value: Any, where: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{where} must be a string or a non-empty list of strings")
    return values


def parse_policy(document: Any, source: str) -> Policy:
    if not isinstance(document, dict) or "Statement" not in document:
        raise PolicyError(f"{source}: a policy is a JSON object with a 'Statement'")
    raw = document["Statement"]
    raw = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw, list):
        raise PolicyError(f"{source}: 'Statement' must be an object or a list of objects")
    statements = []
    for i, st in enumerate(raw):
        where = f"{source}: Statement[{i}]"
        if not isinstance(st, dict):
            raise PolicyError(f"{where} must be an object")
        unsupported = sorted(set(st) - _STATEMENT_KEYS)
        if unsupported:
            raise PolicyError(f"{where}: {', '.join(unsupported)} not supported by rekface")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"{where}.Effect must be 'Allow' or 'Deny'")
        for key in ("Action", "Resource"):
            if key not in st:
                raise PolicyError(f"{where}.{key} is required")
        statements.append(
            Statement(
                allow=st["Effect"] == "Allow",
                actions=tuple(
                    _wildcard(a, ignore_case=True)
                    for a in _strings(st["Action"], f"{where}.Action")
                ),
                resources=tuple(
                    _wildcard(r, ignore_case=False)
                    for r in _strings(st["Resource"], f"{where}.Resource")
                ),
            )
        )
    return Policy(tuple(statements))


def load_policy(path: Path) -> Policy:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: not JSON: {exc}") from None
    return parse_policy(document, str(path))


@dataclass(frozen=True)
class Access:
    """One permission a request needs: an action on a resource."""

    action: str
    resource: str


def required_access(
    operation: str, request: dict[str, Any], region: str, account_id: str
) -> Iterator[Access]:
    """What ``operation`` with ``request`` (a decoded, not yet validated body) needs."""
    collection = request.get("CollectionId")
    if operation in ("TagResource", "UntagResource", "ListTagsForResource"):
        arn = request.get("ResourceArn")
        resource = arn if isinstance(arn, str) else "*"
    elif isinstance(collection, str):
        resource = f"arn:aws:rekognition:{region}:{account_id}:collection/{collection}"
    else:
        resource = "*"
    yield Access(f"rekognition:{operation}", resource)
    for member in _IMAGE_MEMBERS:
        image = request.get(member)
        s3 = image.get("S3Object") if isinstance(image, dict) else None
        if isinstance(s3, dict):
            bucket, key = s3.get("Bucket"), s3.get("Name")
            if isinstance(bucket, str) and isinstance(key, str):
                yield Access("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")
