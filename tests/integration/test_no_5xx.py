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
