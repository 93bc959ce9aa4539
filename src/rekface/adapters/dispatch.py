"""One request in, one response out, for any transport: decode, run the operation, encode.

Every exception becomes a Rekognition error body here and nowhere else; anything unexpected is
logged with its stack trace and answered as a generic InternalServerError, never shown to the
client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rekface import operations
from rekface.adapters import wire
from rekface.errors import (
    InternalServerError,
    RekognitionError,
)
from rekface.operations.context import Context
from rekface.spec.operations import operation_from_target

log = logging.getLogger("rekface")


# Called with the decoded request before the operation runs; raises to refuse it (the policy of
# the signed caller in `rekface serve --credentials`).
Authorizer = Callable[[str, dict[str, Any]], None]


@dataclass
class WireResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""  # the error code, "" on success
    payload: dict[str, Any] | None = None  # the operation's response, for metrics


class Dispatcher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def handle_target(self, target: str | None, body: bytes | str) -> WireResponse:
        """A Rekognition wire request: the operation named by ``X-Amz-Target``."""
        request_id = new_request_id()
        try:
            operation = operation_from_target(target)
        except RekognitionError as err:
            return error_response(err, request_id)
        return self.run(operation, body, request_id)

    def handle_operation(self, operation: str, body: bytes | str) -> WireResponse:
        """A request for a known operation (per-operation routes and Lambda functions)."""
        return self.run(operation, body, new_request_id())

    def run(
        self,
        operation: str,
        body: bytes | str,
        request_id: str,
        authorize: Authorizer | None = None,
    ) -> WireResponse:
        try:
            request = wire.decode_request(operation, body)
            if authorize is not None:
                authorize(operation, request)
            response = operations.run(self.ctx, operation, request)
        except RekognitionError as err:
            if err.status >= 500:
                log.error("%s failed: %s: %s", operation, err.code, err.message)
            return error_response(err, request_id)
        except Exception:
            log.exception("%s failed unexpectedly (request %s)", operation, request_id)
            return error_response(
                InternalServerError(f"Internal server error (request id {request_id})"), request_id
            )
        return WireResponse(
            200, wire.encode_response(response), _headers(request_id), payload=response
        )


def new_request_id() -> str:
    return str(uuid.uuid4())


def error_response(err: RekognitionError, request_id: str) -> WireResponse:
    headers = _headers(request_id)
    headers["x-amzn-ErrorType"] = err.code
    return WireResponse(err.status, wire.encode_error(err), headers, error=err.code)


def _headers(request_id: str) -> dict[str, str]:
    return {"Content-Type": wire.CONTENT_TYPE, "x-amzn-RequestId": request_id}
