"""Light helpers shared by the Lambda adapters: API Gateway proxy events in and out, Powertools.

Kept free of the operations (and so of numpy and onnxruntime) so that the ``POST /`` router, which
only forwards requests, starts cold in a few tens of milliseconds. The X-Ray SDK is imported only
when tracing is on (``tracer()``), as Powertools' Tracer imports it even to switch itself off.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from rekface.errors import SerializationException

TRUTHY = ("1", "true", "yes", "on", "y", "t")


def event_body(event: dict[str, Any]) -> bytes:
    """The request body; a body API Gateway marked as base64 that is not base64 (only a hand-made
    event can be) is SerializationException, as any undecodable body."""
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise SerializationException("The request body must be a string")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SerializationException("The request body is not valid base64") from exc
    return body.encode("utf-8", "surrogatepass")


def header(event: dict[str, Any], name: str) -> str | None:
    """API Gateway keeps the client's header case; HTTP headers are case-insensitive."""
    wanted = name.lower()
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == wanted:
            return value
    return None


def proxy_response(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": headers,
        "body": body.decode("utf-8"),
        "isBase64Encoded": False,
    }


def tracing_enabled(env: dict[str, str] | None = None) -> bool:
    """Powertools' own rule: on in Lambda (LAMBDA_TASK_ROOT), unless POWERTOOLS_TRACE_DISABLED is
    truthy or the function runs under `sam local` or `chalice local`."""
    env = os.environ if env is None else env
    if (env.get("POWERTOOLS_TRACE_DISABLED") or "").strip().lower() in TRUTHY:
        return False
    if env.get("AWS_SAM_LOCAL") or env.get("AWS_CHALICE_CLI_MODE"):
        return False
    return bool(env.get("LAMBDA_TASK_ROOT"))


def _service() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or "rekface"


def logger() -> Any:
    """Structured JSON logs with the request id (POWERTOOLS_LOG_LEVEL, the stack sets INFO)."""
    from aws_lambda_powertools import Logger

    return Logger(service=_service())


def tracer() -> Any:
    """Powertools' Tracer when tracing is on, else None (and no X-Ray SDK import)."""
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=_service())


def metrics() -> Any:
    from aws_lambda_powertools import Metrics

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "rekface"
    return Metrics(namespace=namespace, service=_service())


def powertools() -> tuple[Any, Any, Any]:
    """Logger, Tracer and Metrics (the Tracer always, switched off outside Lambda), for adapters
    that decorate with the tracer unconditionally (the S3 flows)."""
    from aws_lambda_powertools import Tracer

    return logger(), Tracer(service=_service()), metrics()
