"""`rekface serve`: the Rekognition wire protocol on localhost.

- ``POST /`` with ``X-Amz-Target: RekognitionService.<Operation>`` (what boto3 and the AWS CLI
  send, signed or not: any SigV4 signature is accepted in local mode);
- ``POST /<operation-in-kebab-case>`` (e.g. ``/compare-faces``), the REST routes the AWS
  deployment's API Gateway also has, with the same JSON body;
- ``GET /health`` for readiness checks.

Requests are served concurrently (one thread each); the engine's sessions are shared.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rekface.adapters.dispatch import Dispatcher, WireResponse
from rekface.adapters.wire import CONTENT_TYPE, encode_error
from rekface.errors import ImageTooLargeException, RekognitionError, UnknownOperationException
from rekface.spec.operations import OPERATIONS

log = logging.getLogger("rekface.server")

# 5 MB of image as base64 is ~7 MB; a body above this cannot be a valid request.
MAX_BODY = 8 * 1024 * 1024
_ROUTES = {op.route: op.name for op in OPERATIONS}


class RekognitionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses connections
    server_version = "rekface"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waits for the
    # client's delayed ACK (~40 ms per request on keep-alive connections, measured).
    disable_nagle_algorithm = True
    dispatcher: Dispatcher  # set on the subclass built by make_server

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(self.dispatcher.handle_target(self.headers.get("X-Amz-Target"), body))
        elif path in _ROUTES:
            self._send(self.dispatcher.handle_operation(_ROUTES[path], body))
        else:
            self._send_error(404, UnknownOperationException(f"No operation at POST {path}"))

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/health":
            self._send(WireResponse(200, b'{"status":"ok"}', {"Content-Type": "application/json"}))
        else:
            self._send_error(404, UnknownOperationException(f"No operation at GET {self.path}"))

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send_error(400, RekognitionError("Invalid Content-Length"))
            return None
        if length > MAX_BODY:
            # Drain what was sent so the client reads our answer instead of a reset connection.
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            self._send_error(
                400,
                ImageTooLargeException(
                    f"Request body is {length} bytes: the maximum is {MAX_BODY}"
                ),
            )
            return None
        return self.rfile.read(length)

    def _send_error(self, status: int, err: RekognitionError) -> None:
        self._send(
            WireResponse(
                status,
                encode_error(err),
                {"Content-Type": CONTENT_TYPE, "x-amzn-ErrorType": err.code},
            )
        )

    def _send(self, response: WireResponse) -> None:
        self.send_response(response.status)
        for k, v in response.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class RekfaceServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(dispatcher: Dispatcher, host: str, port: int) -> RekfaceServer:
    handler = type("BoundRekognitionHandler", (RekognitionHandler,), {"dispatcher": dispatcher})
    return RekfaceServer((host, port), handler)


def serve_in_thread(server: RekfaceServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="rekface-server", daemon=True)
    thread.start()
    return thread
