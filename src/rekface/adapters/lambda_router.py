"""The ``POST /`` Lambda on AWS: the Rekognition wire protocol, routed by ``X-Amz-Target``.

It runs no operation itself. It reads the target, then invokes that operation's own function
synchronously with the unchanged API Gateway event and returns its answer. So its role holds only
``lambda:InvokeFunction`` on the 21 operation functions, and every request still runs under the
least-privilege role of its operation (a ``ListFaces`` sent to ``POST /`` cannot write the table).
The price is a second, short invocation per request (one extra hop inside the region).

``REKFACE_FUNCTIONS`` (set by the CDK stack) maps each operation name to its function name;
``REKFACE_FUNCTION_TIMEOUT_S`` is the longest timeout among them.

The Lambda client makes exactly one attempt (botocore's retries would run a non-idempotent
operation twice, and the caller's SDK retries a ThrottlingException or InternalServerError
anyway), with a read timeout above the target's own timeout (the target is stopped by Lambda
before the router stops waiting, so a slow answer is never abandoned and run again). Every
failure of the invocation becomes a Rekognition error; details go to the log, never to the
client.

Cold start matters here (every ``POST /`` request of a cold router pays it): the module imports no
operation code (no numpy, onnxruntime or Pillow), and the X-Ray SDK only when tracing is on.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from rekface.adapters.lambda_events import header, logger, proxy_response, tracer
from rekface.errors import (
    ImageTooLargeException,
    InternalServerError,
    RekognitionError,
    ThrottlingException,
)
from rekface.spec.operations import operation_from_target

CONTENT_TYPE = "application/x-amz-json-1.1"
FUNCTIONS_ENV = "REKFACE_FUNCTIONS"
TIMEOUT_ENV = "REKFACE_FUNCTION_TIMEOUT_S"
DEFAULT_FUNCTION_TIMEOUT_S = 29  # API Gateway's integration timeout: no API function runs longer
READ_TIMEOUT_MARGIN_S = 2  # the router waits this much longer than the target may run
CONNECT_TIMEOUT_S = 2  # the Lambda endpoint is in the region: a slow connect is a failure

# Lambda Invoke errors (the service's error codes) that mean "too many requests now": the
# account's or the function's concurrency is used up, or Lambda is scaling out.
THROTTLED = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "EC2ThrottledException",
        "ResourceNotReadyException",
        "ResourceConflictException",
    }
)
# The forwarded event is larger than Lambda's 6 MB synchronous payload: an image too large for
# API Gateway (Image.Bytes); the client must pass it as Image.S3Object.
TOO_LARGE = frozenset({"RequestTooLargeException", "RequestEntityTooLargeException"})
TOO_LARGE_MESSAGE = (
    "Image too large for API Gateway: pass images over 4.5 MB (2.25 MB each for CompareFaces) "
    "as Image.S3Object"
)

# invoke(function_name, payload) -> (payload, function_error or None)
Invoker = Callable[[str, bytes], tuple[bytes, str | None]]


class InvokeFailed(Exception):
    """The invocation failed for a reason the client cannot act on (logged, answered as
    InternalServerError)."""


def functions_from_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    raw = (os.environ if env is None else env).get(FUNCTIONS_ENV)
    if not raw:
        raise RuntimeError(f"{FUNCTIONS_ENV} is not set: the stack maps operations to functions")
    functions = json.loads(raw)
    if not isinstance(functions, dict):
        raise RuntimeError(f"{FUNCTIONS_ENV} must be a JSON object of operation -> function name")
    return functions


def function_timeout_from_env(env: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get(TIMEOUT_ENV) or ""
    if not raw:
        return DEFAULT_FUNCTION_TIMEOUT_S
    if not raw.isdigit() or int(raw) < 1:
        raise RuntimeError(f"{TIMEOUT_ENV} must be a whole number of seconds, got {raw!r}")
    return int(raw)


def client_config(function_timeout_s: int) -> Any:
    """The botocore Config of the router's Lambda client: one attempt, read timeout above the
    target's timeout, short connect timeout."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        read_timeout=function_timeout_s + READ_TIMEOUT_MARGIN_S,
        connect_timeout=CONNECT_TIMEOUT_S,
        tcp_keepalive=True,
    )


def lambda_client(function_timeout_s: int) -> Any:
    import boto3

    return boto3.client("lambda", config=client_config(function_timeout_s))


def lambda_invoker(client: Any) -> Invoker:
    """Synchronous invocation through a boto3 Lambda client; failures as Rekognition errors
    (retryable ones as ThrottlingException) or InvokeFailed."""
    from botocore.exceptions import BotoCoreError, ClientError

    def invoke(function_name: str, payload: bytes) -> tuple[bytes, str | None]:
        try:
            response = client.invoke(
                FunctionName=function_name, InvocationType="RequestResponse", Payload=payload
            )
            return response["Payload"].read(), response.get("FunctionError")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in THROTTLED:
                raise ThrottlingException("Rate exceeded") from exc
            if code in TOO_LARGE:
                raise ImageTooLargeException(TOO_LARGE_MESSAGE) from exc
            raise InvokeFailed(f"Invoke {function_name}: {code}: {exc}") from exc
        except BotoCoreError as exc:  # timeouts, connection errors, a payload cut short
            raise InvokeFailed(f"Invoke {function_name}: {type(exc).__name__}: {exc}") from exc

    return invoke


def error_response(err: RekognitionError) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    headers = {
        "Content-Type": CONTENT_TYPE,
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": err.code,
    }
    return proxy_response(err.status, headers, json.dumps(err.to_body()).encode("utf-8"))


def _proxy_answer(payload: bytes) -> dict[str, Any] | None:
    """The operation function's API Gateway proxy response, or None if it is not one."""
    try:
        answer = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("statusCode"), int):
        return None
    return answer


class Router:
    def __init__(self, functions: Mapping[str, str], invoke: Invoker, log: Any = None) -> None:
        self.functions = dict(functions)
        self.invoke = invoke
        self.log = log

    def _log(self, level: str, message: str, **extra: Any) -> None:
        if self.log is not None:
            getattr(self.log, level)(message, extra=extra)

    def route(self, event: dict[str, Any]) -> dict[str, Any]:
        operation = ""
        try:
            operation = operation_from_target(header(event, "X-Amz-Target"))
            function = self.functions.get(operation)
            if function is None:
                # A stack/operation-table mismatch: a deployment fault, not the client's.
                raise InternalServerError(f"No function is deployed for {operation}")
            payload, function_error = self.invoke(function, json.dumps(event).encode("utf-8"))
        except RekognitionError as err:
            if err.status >= 500:
                self._log("warning", "routing failed", operation=operation, error=err.code)
            return error_response(err)
        except Exception as exc:  # InvokeFailed, or anything unforeseen: never a stack trace
            self._log("error", "invoking the operation's function failed", error=repr(exc))
            return error_response(InternalServerError("Internal server error"))
        answer = None if function_error else _proxy_answer(payload)
        if answer is None:
            # The function crashed, timed out or ran out of memory (its own errors come back
            # as a 4xx/5xx proxy answer), or answered something that is not an answer.
            self._log(
                "error",
                "operation function failed",
                operation=operation,
                function_error=function_error,
                error=payload[:2000].decode("utf-8", "replace"),
            )
            return error_response(InternalServerError("Internal server error"))
        return answer


def make_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    log = logger()
    trace = tracer()  # None unless tracing is on: then the X-Ray SDK is never imported
    state: dict[str, Router] = {}

    def router() -> Router:
        if "router" not in state:  # built on the first invocation, reused while warm
            client = lambda_client(function_timeout_from_env())
            state["router"] = Router(functions_from_env(), lambda_invoker(client), log)
        return state["router"]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return router().route(event)

    if trace is not None:
        handler = trace.capture_lambda_handler(capture_response=False)(handler)
    return log.inject_lambda_context(log_event=False)(handler)
