"""The operation layer: one function per Rekognition operation, ``(Context, request) -> response``.

``run`` is the single entry point every adapter uses: it validates the request against the
botocore model (plus the service's own limits), then calls the operation. Operations take and
return plain dicts shaped like the API's JSON and raise only ``rekface.errors`` exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rekface.errors import UnknownOperationException
from rekface.operations.compare_faces import compare_faces
from rekface.operations.context import Context
from rekface.operations.detect_faces import detect_faces
from rekface.spec.operations import BY_NAME
from rekface.spec.validate import validate_request

Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]

HANDLERS: dict[str, Handler] = {
    "DetectFaces": detect_faces,
    "CompareFaces": compare_faces,
}


def run(ctx: Context, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation not in BY_NAME:
        raise UnknownOperationException(f"Unknown operation: {operation}")
    handler = HANDLERS.get(operation)
    if handler is None:
        raise UnknownOperationException(
            f"{operation} is a Rekognition operation that this version of rekface "
            "does not serve yet"
        )
    validate_request(operation, request)
    return handler(ctx, request)
