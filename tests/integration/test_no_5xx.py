"""No client mistake is answered with a 5xx: every operation gets, member by member, values of the
wrong type, out of range, empty, huge or malformed, and must answer a Rekognition 4xx error (or a
200 where the value happens to be acceptable)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from rekface.adapters.dispatch import Dispatcher
from rekface.spec.model import input_shape
from rekface.spec.operations import OPERATIONS


def encode_png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, "PNG")
    return buf.getvalue()


TINY_PNG = base64.b64encode(encode_png(1, 1)).decode()
BAD_VALUES = [None, "", "x" * 300, -1, 0, 10**20, 1.5, float("nan"), True, [], {}, [None],
              {"Bytes": "!!"}, "\u0000", "not-a-uuid",
              # images: nested wrong types, empty, both sources, a 1-pixel PNG, a PNG header alone
              {"S3Object": {}}, {"S3Object": {"Bucket": 5, "Name": []}}, {"Bytes": ""},
              {"Bytes": TINY_PNG, "S3Object": {"Bucket": "b", "Name": "n"}}, {"Bytes": TINY_PNG},
              {"Bytes": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()}]  # fmt: skip
JPEG = "/9j/"  # base64 of a JPEG's first bytes only: a truncated image


def skeleton(op: str) -> dict:
    """A plausible request: required members filled with values of the right type."""
    shape = input_shape(op)
    request: dict = {}
    for name in shape.required_members:
        member = shape.members[name]
        if member.type_name == "structure":
            request[name] = {"Bytes": JPEG}
        elif member.type_name == "list":
            request[name] = ["00000000-0000-4000-8000-000000000000"]
        elif member.type_name == "map":
            request[name] = {"k": "v"}
        elif name == "ResourceArn":
            request[name] = "arn:aws:rekognition:us-east-1:000000000000:collection/none"
        else:
            request[name] = "no-such-thing"
    return request


@pytest.mark.parametrize("op", [op.name for op in OPERATIONS])
def test_malformed_members_never_get_a_5xx(ctx, op):
    dispatcher = Dispatcher(ctx)
    base = skeleton(op)
    members = list(input_shape(op).members)
    statuses = set()
    for name in members:
        for value in BAD_VALUES:
            request = {**base, name: value}
            body = json.dumps(request, allow_nan=True)
            response = dispatcher.handle_operation(op, body)
            statuses.add(response.status)
            assert response.status < 500, (op, name, value, response.body[:300])
            if response.status >= 400:
                error = json.loads(response.body)
                assert error["__type"] and error["Message"], (op, name, value)
    assert statuses & {400}, op


# Bodies that broke the parser or the validator (issue 18): deep nesting and a 5,000-digit integer
# were 500s (RecursionError, ValueError); each replaces one member's value, as raw JSON text.
HOSTILE_JSON = {
    "nested 1,000": "[" * 1000 + "]" * 1000,
    "nested 200,000": "[" * 200_000 + "]" * 200_000,
    "nested objects 1,000": '{"a":' * 1000 + "1" + "}" * 1000,
    "5,000-digit integer": "9" * 5000,
    "negative 5,000-digit integer": "-" + "9" * 5000,
    "1e999": "1e999",
    "-1e999": "-1e999",
    "1e-999": "1e-999",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "lone surrogate": '"\\ud800"',
}
MAX_ERROR_BYTES = 2048


def assert_4xx(response, *context) -> None:
    assert 400 <= response.status < 500, (*context, response.status, response.body[:300])
    error = json.loads(response.body)
    assert error["__type"] and error["Message"], context
    assert len(response.body) <= MAX_ERROR_BYTES, (*context, len(response.body))


@pytest.mark.parametrize("op", [op.name for op in OPERATIONS])
def test_hostile_json_never_gets_a_5xx(ctx, op):
    dispatcher = Dispatcher(ctx)
    base = skeleton(op)
    members = list(input_shape(op).members)
    for name in members[:3]:  # the first members: required ones come first in most shapes
        template = json.dumps({**base, name: "@HOSTILE@"})
        for label, raw in HOSTILE_JSON.items():
            response = dispatcher.handle_operation(op, template.replace('"@HOSTILE@"', raw))
            assert response.status < 500, (op, name, label, response.body[:300])
            if response.status >= 400:
                assert_4xx(response, op, name, label)


@pytest.mark.parametrize("op", ["CreateCollection", "DescribeCollection", "ListFaces"])
def test_duplicate_keys_never_get_a_5xx(ctx, op):
    body = '{"CollectionId": "dup-a", "CollectionId": "' + "é" * 300 + '", "MaxResults": 1}'
    response = Dispatcher(ctx).handle_operation(op, body)
    assert response.status < 500, response.body[:300]


@pytest.mark.parametrize("op", ["CreateCollection", "DescribeCollection", "DeleteCollection"])
def test_a_collection_id_of_a_million_characters_gets_a_short_error(ctx, op):
    """It was echoed twice: a 12 MB error response."""
    body = json.dumps({"CollectionId": "é" * 1_000_000})
    assert_4xx(Dispatcher(ctx).handle_operation(op, body), op)


def test_delete_faces_with_10000_bad_ids_is_linear_and_short(ctx):
    """Each element's error echoed the whole list: 62 s, a 302 MB message, +1.1 GB of RSS. The
    memory Python allocates for the call is measured (tracemalloc), not its time."""
    import tracemalloc

    body = json.dumps({"CollectionId": "no-such-collection", "FaceIds": ["x"] * 10_000})
    tracemalloc.start()
    try:
        response = Dispatcher(ctx).handle_operation("DeleteFaces", body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_4xx(response, "DeleteFaces")
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated for a 50 KB request"
    message = json.loads(response.body)["Message"]
    assert message.split(" ", 1)[0].isdigit() and "validation error" in message, message
