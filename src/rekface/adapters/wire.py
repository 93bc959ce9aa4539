"""The AWS JSON 1.1 protocol, as boto3 and the AWS CLI speak it to Rekognition.

Requests: ``POST /`` with ``X-Amz-Target: RekognitionService.<Operation>`` and a JSON body whose
blob members (``Image.Bytes``) are base64 strings. Responses: JSON with epoch-second timestamps;
errors as ``{"__type": <error shape>, "Message": ...}`` with the status of ``rekface.errors``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from botocore.model import Shape

from rekface.errors import RekognitionError, SerializationException
from rekface.spec.model import input_shape

CONTENT_TYPE = "application/x-amz-json-1.1"
# Deeper than any Rekognition request shape (the deepest is 4); deeper bodies are refused before
# anything walks them, so no recursion in the codec, the validator or its messages can overflow.
MAX_DEPTH = 32


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def decode_request(operation: str, body: bytes | str) -> dict[str, Any]:
    """The JSON body of ``operation`` as a dict, with blob members decoded to bytes."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializationException(f"Request body is not UTF-8 text: {exc}") from exc
    if not body.strip():
        body = "{}"  # botocore sends "{}" for no parameters; an empty body means the same
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise SerializationException(f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise SerializationException(
            f"Request body is nested deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError as exc:  # NaN/Infinity, an integer of more than 4,300 digits
        raise SerializationException(f"Request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise SerializationException("Request body must be a JSON object")
    if _depth_exceeds(value, MAX_DEPTH):
        raise SerializationException(f"Request body is nested deeper than {MAX_DEPTH} levels")
    return _decode_blobs(input_shape(operation), value, operation)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether any container in ``value`` is nested more than ``limit`` deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _decode_blobs(shape: Shape, value: Any, path: str) -> Any:
    kind = shape.type_name
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SerializationException(f"{path} is not valid base64: {exc}") from exc
    if kind == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        return {
            k: _decode_blobs(members[k], v, f"{path}.{k}") if k in members else v
            for k, v in value.items()
        }
    if kind == "list" and isinstance(value, list):
        return [_decode_blobs(shape.member, v, path) for v in value]  # type: ignore[attr-defined]
    return value


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def encode_response(response: dict[str, Any]) -> bytes:
    return json.dumps(response, default=_default, separators=(",", ":")).encode("utf-8")


def encode_error(error: RekognitionError) -> bytes:
    return json.dumps(error.to_body(), separators=(",", ":")).encode("utf-8")
