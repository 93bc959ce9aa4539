"""The WSGI application of `rekface serve`: routes, authentication, admission, access log.

- ``POST /`` with ``X-Amz-Target: RekognitionService.<Operation>`` (what boto3 and the AWS CLI
  send) and ``POST /<operation-in-kebab-case>`` (the REST routes of the AWS deployment's API);
- ``GET /health`` (readiness; never queued behind the API) and ``GET /metrics`` (Prometheus; on
  this listener only when serving anonymously on loopback, see ``rekface.cli``).

Each API request, in order: body size cap, SigV4 signature (with ``--credentials``), the admission
gate of its kind (image operations or the rest), decode, the caller's policy, the operation. The
order keeps refusals cheap: an unsigned or throttled request costs a hash, not a JSON parse.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from rekface.adapters.admission import Gate
from rekface.adapters.credentials import Authority
from rekface.adapters.dispatch import Dispatcher, WireResponse, error_response, new_request_id
from rekface.adapters.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from rekface.adapters.metrics import ServerMetrics
from rekface.adapters.sigv4 import Caller, ReceivedRequest
from rekface.errors import (
    ImageTooLargeException,
    RekognitionError,
    SerializationException,
    UnknownOperationException,
)
from rekface.spec.operations import OPERATIONS, operation_from_target

access_log = logging.getLogger("rekface.access")

# 5 MB of image as base64 is ~7 MB; a body above this cannot be a valid request.
MAX_BODY = 8 * 1024 * 1024
_ROUTES = {op.route: op.name for op in OPERATIONS}
_READS_IMAGES = {op.name for op in OPERATIONS if op.reads_images}
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Gates:
    images: Gate  # DetectFaces, CompareFaces, IndexFaces, Search*ByImage: CPU-bound, ~0.1-0.5 s
    other: Gate  # everything else: store reads and writes, searches by id

    def for_operation(self, operation: str) -> Gate:
        return self.images if operation in _READS_IMAGES else self.other

    def __iter__(self):
        return iter((self.images, self.other))


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class RekfaceApp:
    def __init__(
        self,
        dispatcher: Dispatcher,
        gates: Gates,
        authority: Authority | None = None,
        metrics_on_api_listener: bool = True,
    ) -> None:
        self.dispatcher = dispatcher
        self.gates = gates
        self.authority = authority
        self.metrics_on_api_listener = metrics_on_api_listener
        self.metrics = ServerMetrics(dispatcher.ctx.store, gates)
        self.active = 0  # requests inside the application (for a graceful stop)
        self._active_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._active_lock:
            self.active += 1
        try:
            return self._route(environ, start_response)
        finally:
            with self._active_lock:
                self.active -= 1

    def _route(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        if method == "GET" and path == "/health":
            return _reply(start_response, 200, b'{"status":"ok"}', _JSON)
        if method == "GET" and path == "/metrics" and self.metrics_on_api_listener:
            return _reply(
                start_response, 200, self.metrics.render(), {"Content-Type": METRICS_CONTENT_TYPE}
            )
        if method == "POST" and (path == "/" or path in _ROUTES):
            return self._api(environ, start_response, path)
        request_id = new_request_id()
        err = UnknownOperationException(f"No operation at {method[:10]} {path[:200]}")
        response = error_response(err, request_id)
        response.status = 404
        return self._send(start_response, response)

    def _api(
        self, environ: dict[str, Any], start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        started = time.monotonic()
        request_id = new_request_id()
        operation = _ROUTES.get(path, "unknown")
        caller: Caller | None = None
        unknown_target: RekognitionError | None = None
        if path == "/":
            try:
                operation = operation_from_target(environ.get("HTTP_X_AMZ_TARGET"))
            except RekognitionError as err:  # answered after authentication, as AWS does
                unknown_target = err
        try:
            body = _read_body(environ)
            if self.authority is not None:
                caller = self.authority.verifier.verify(_received(environ, body))
            if unknown_target is not None:
                raise unknown_target
            with self.gates.for_operation(operation).enter():
                authorize = None
                if self.authority is not None and caller is not None:
                    authority, who = self.authority, caller

                    def authorize(op: str, request: dict[str, Any]) -> None:
                        authority.authorize(who, op, request)

                response = self.dispatcher.run(operation, body, request_id, authorize)
        except RekognitionError as err:
            response = error_response(err, request_id)
        seconds = time.monotonic() - started
        self.metrics.observe(operation, response.status, response.error, seconds, response.payload)
        access_log.info(
            json.dumps(
                {
                    "request_id": request_id,
                    "operation": operation,
                    "status": response.status,
                    "error": response.error or None,
                    "ms": round(seconds * 1000, 1),
                    "access_key_id": caller.access_key_id if caller else None,
                    "remote": environ.get("REMOTE_ADDR"),
                },
                separators=(",", ":"),
            )
        )
        return self._send(start_response, response)

    @staticmethod
    def _send(start_response: StartResponse, response: WireResponse) -> Iterable[bytes]:
        return _reply(start_response, response.status, response.body, response.headers)


def _reply(
    start_response: StartResponse, status: int, body: bytes, headers: dict[str, str]
) -> list[bytes]:
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [*headers.items(), ("Content-Length", str(len(body)))],
    )
    return [body]


def _read_body(environ: dict[str, Any]) -> bytes:
    raw_length = environ.get("CONTENT_LENGTH") or "0"
    if not raw_length.isdigit():
        raise SerializationException("Invalid Content-Length")
    length = int(raw_length)
    if length > MAX_BODY:
        # The server library has already buffered (or refused) the body: nothing to drain.
        raise ImageTooLargeException(f"Request body is {length} bytes: the maximum is {MAX_BODY}")
    return environ["wsgi.input"].read(length) if length else b""


def _received(environ: dict[str, Any], body: bytes) -> ReceivedRequest:
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    uri = environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/"
    raw_path, _, raw_query = uri.partition("?")
    return ReceivedRequest(
        method=environ.get("REQUEST_METHOD", ""),
        raw_path=raw_path,
        raw_query=raw_query,
        headers=headers,
        body=body,
    )
