"""The operation tests' way to call: through ``operations.run`` (validation included), every
response checked against the botocore output shape."""

from __future__ import annotations

from benchmarks.shared_faces import image_bytes
from rekface import operations
from rekface.spec.model import output_shape
from rekface.spec.validate import validate_shape


def call(ctx, op, **request):
    response = operations.run(ctx, op, request)
    validate_shape(output_shape(op), response)
    return response


def img(rel: str) -> dict:
    return {"Bytes": image_bytes(rel)}
