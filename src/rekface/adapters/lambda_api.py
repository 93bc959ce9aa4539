"""Lambda handlers behind API Gateway (REST proxy integration).

One function per operation (``make_handler("DetectFaces")``): the JSON body is that operation's
request, as on the per-operation route ``POST /detect-faces``. The wire-protocol function
(``make_handler(None)``) serves ``POST /``: the operation comes from ``X-Amz-Target``, so
``boto3.client("rekognition", endpoint_url=API_URL)`` works unchanged.

Powertools gives structured logs (with the request id), X-Ray traces and EMF metrics. The process
context (engine, S3 client, store) is built on the first invocation and reused while warm.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rekface.adapters import lambda_events
from rekface.adapters.bootstrap import build_context
from rekface.adapters.dispatch import Dispatcher, WireResponse
from rekface.adapters.lambda_events import event_body, header, powertools

_dispatcher: Dispatcher | None = None
_lock = threading.Lock()

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def dispatcher() -> Dispatcher:
    global _dispatcher
    if _dispatcher is None:
        with _lock:
            if _dispatcher is None:
                _dispatcher = Dispatcher(build_context())
    return _dispatcher


def reset() -> None:
    """Forget the process context, so the next invocation rebuilds it from the environment
    (tests that switch configuration between invocations)."""
    global _dispatcher
    with _lock:
        _dispatcher = None


def proxy_response(response: WireResponse) -> dict[str, Any]:
    return lambda_events.proxy_response(response.status, response.headers, response.body)


def make_handler(operation: str | None) -> LambdaHandler:
    from aws_lambda_powertools.metrics import MetricUnit

    logger, tracer, metrics = powertools()

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        body = event_body(event)
        if operation is None:
            response = dispatcher().handle_target(header(event, "X-Amz-Target"), body)
        else:
            response = dispatcher().handle_operation(operation, body)
        name = operation or (header(event, "X-Amz-Target") or "").rpartition(".")[2] or "Unknown"
        metrics.add_dimension(name="Operation", value=name)
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        if response.status >= 500:
            metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        elif response.status >= 400:
            metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
        logger.info(
            "request done",
            extra={
                "operation": name,
                "status": response.status,
                "request_id": response.headers.get("x-amzn-RequestId"),
            },
        )
        return proxy_response(response)

    return handler
