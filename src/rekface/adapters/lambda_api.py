"""Lambda handlers behind API Gateway (REST proxy integration).

One function per operation (``make_handler("DetectFaces")``): the JSON body is that operation's
request, as on the per-operation route ``POST /detect-faces``. The wire-protocol function
(``make_handler(None)``) serves ``POST /``: the operation comes from ``X-Amz-Target``, so
``boto3.client("rekognition", endpoint_url=API_URL)`` works unchanged.

Powertools gives structured logs (with the request id), EMF metrics and, when tracing is on,
X-Ray traces. The process context (store, search, S3 client, engine) is built on the first
invocation and reused while warm.

What a cold start imports follows what the function does: an image function loads the engine's
modules (numpy, onnxruntime, Pillow) at init, where Lambda runs them before the first request; a
data function (collections, faces, users, tags: no image decoded) never imports onnxruntime or
Pillow, and numpy only with the store on its first request (embeddings are numpy arrays).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rekface.adapters import lambda_events
from rekface.adapters.lambda_events import event_body, header
from rekface.errors import RekognitionError

if TYPE_CHECKING:
    from rekface.adapters.dispatch import Dispatcher, WireResponse

_dispatcher: Dispatcher | None = None
_lock = threading.Lock()

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def reads_images(operation: str | None) -> bool:
    """``None`` (every operation in one function) counts as an image function."""
    from rekface.spec.operations import BY_NAME

    return operation is None or BY_NAME[operation].reads_images


def build_dispatcher(operation: str | None) -> Dispatcher:
    """The process context of the function serving ``operation``, from the environment."""
    from rekface.adapters.bootstrap import build_context
    from rekface.adapters.dispatch import Dispatcher
    from rekface.adapters.token_secret import lambda_token_secret
    from rekface.settings import Settings

    settings = Settings.from_env()
    settings = replace(settings, token_secret=lambda_token_secret(settings.token_secret, operation))
    # A data function never runs an image operation: the engine and the other operations'
    # modules are imported only if used (never, in practice).
    return Dispatcher(build_context(settings, lazy=not reads_images(operation)))


def dispatcher(operation: str | None = None) -> Dispatcher:
    global _dispatcher
    if _dispatcher is None:
        with _lock:
            if _dispatcher is None:
                _dispatcher = build_dispatcher(operation)
    return _dispatcher


def reset() -> None:
    """Forget the process context, so the next invocation rebuilds it from the environment
    (tests that switch configuration between invocations)."""
    global _dispatcher
    with _lock:
        _dispatcher = None


def proxy_response(response: WireResponse) -> dict[str, Any]:
    return lambda_events.proxy_response(response.status, response.headers, response.body)


def _answer(operation: str | None, event: dict[str, Any]) -> WireResponse:
    from rekface.adapters.dispatch import error_response, new_request_id

    try:
        body = event_body(event)
        target = dispatcher(operation)
    except RekognitionError as err:  # an undecodable body, an unreadable token secret
        return error_response(err, new_request_id())
    if operation is None:
        return target.handle_target(header(event, "X-Amz-Target"), body)
    return target.handle_operation(operation, body)


def make_handler(operation: str | None) -> LambdaHandler:
    if reads_images(operation):
        # Init does the heavy imports, before the first request and once per sandbox.
        import rekface.engine.faces  # noqa: F401

    logger = lambda_events.logger()
    tracer = lambda_events.tracer()  # None unless tracing is on: no X-Ray SDK import then
    metrics = lambda_events.metrics()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        from aws_lambda_powertools.metrics import MetricUnit

        response = _answer(operation, event)
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

    wrapped = metrics.log_metrics(capture_cold_start_metric=True)(handler)
    if tracer is not None:
        wrapped = tracer.capture_lambda_handler(capture_response=False)(wrapped)
    return logger.inject_lambda_context(log_event=False)(wrapped)
