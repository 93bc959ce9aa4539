"""Light helpers shared by the Lambda adapters: API Gateway proxy events in and out, Powertools.

Kept free of the operations (and so of numpy and onnxruntime) so that the ``POST /`` router, which
only forwards requests, starts cold in a few tens of milliseconds.
"""

from __future__ import annotations

import base64
import os
from typing import Any


def event_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


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


def powertools() -> tuple[Any, Any, Any]:
    """Logger, Tracer and Metrics configured by the function's environment (the CDK stack sets
    POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL), with local
    defaults so that tests and ``sam local`` without them still work."""
    from aws_lambda_powertools import Logger, Metrics, Tracer

    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "rekface"
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "rekface"
    return (
        Logger(service=service),
        Tracer(service=service),
        Metrics(namespace=namespace, service=service),
    )
