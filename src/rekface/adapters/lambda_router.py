"""The ``POST /`` Lambda on AWS: the Rekognition wire protocol, routed by ``X-Amz-Target``.

It runs no operation itself. It reads the target, then invokes that operation's own function
synchronously with the unchanged API Gateway event and returns its answer. So its role holds only
``lambda:InvokeFunction`` on the 21 operation functions, and every request still runs under the
least-privilege role of its operation (a ``ListFaces`` sent to ``POST /`` cannot write the table).
The price is a second, short invocation per request (one extra hop inside the region).

``REKFACE_FUNCTIONS`` (set by the CDK stack) maps each operation name to its function name.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from rekface.adapters.lambda_events import header, powertools, proxy_response
from rekface.errors import InternalServerError, RekognitionError, ThrottlingException
from rekface.spec.operations import operation_from_target

CONTENT_TYPE = "application/x-amz-json-1.1"
FUNCTIONS_ENV = "REKFACE_FUNCTIONS"

# invoke(function_name, payload) -> (payload, function_error or None)
Invoker = Callable[[str, bytes], tuple[bytes, str | None]]


def functions_from_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    raw = (os.environ if env is None else env).get(FUNCTIONS_ENV)
    if not raw:
        raise RuntimeError(f"{FUNCTIONS_ENV} is not set: the stack maps operations to functions")
    functions = json.loads(raw)
    if not isinstance(functions, dict):
        raise RuntimeError(f"{FUNCTIONS_ENV} must be a JSON object of operation -> function name")
    return functions


def lambda_invoker(client: Any) -> Invoker:
    """Synchronous invocation through a boto3 Lambda client."""
    from botocore.exceptions import ClientError

    def invoke(function_name: str, payload: bytes) -> tuple[bytes, str | None]:
        try:
            response = client.invoke(
                FunctionName=function_name, InvocationType="RequestResponse", Payload=payload
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("TooManyRequestsException", "ThrottlingException"):
                raise ThrottlingException("Rate exceeded") from exc
            raise
        return response["Payload"].read(), response.get("FunctionError")

    return invoke


def error_response(err: RekognitionError) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    headers = {
        "Content-Type": CONTENT_TYPE,
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": err.code,
    }
    return proxy_response(err.status, headers, json.dumps(err.to_body()).encode("utf-8"))


class Router:
    def __init__(self, functions: Mapping[str, str], invoke: Invoker, log: Any = None) -> None:
        self.functions = dict(functions)
        self.invoke = invoke
        self.log = log

    def route(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            operation = operation_from_target(header(event, "X-Amz-Target"))
            function = self.functions.get(operation)
            if function is None:
                # A stack/operation-table mismatch: a deployment fault, not the client's.
                raise InternalServerError(f"No function is deployed for {operation}")
            payload, function_error = self.invoke(function, json.dumps(event).encode("utf-8"))
        except RekognitionError as err:
            return error_response(err)
        except Exception:
            if self.log is not None:
                self.log.exception("invoking the operation's function failed")
            return error_response(InternalServerError("Internal server error"))
        if function_error:
            # The function crashed or timed out (its own errors come back as a 4xx/5xx answer).
            if self.log is not None:
                self.log.error(
                    "operation function failed",
                    extra={
                        "operation": operation,
                        "error": payload[:2000].decode("utf-8", "replace"),
                    },
                )
            return error_response(InternalServerError("Internal server error"))
        return json.loads(payload)


def make_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    logger, tracer, _metrics = powertools()
    state: dict[str, Router] = {}

    def router() -> Router:
        if "router" not in state:  # built on the first invocation, reused while warm
            import boto3

            state["router"] = Router(
                functions_from_env(), lambda_invoker(boto3.client("lambda")), logger
            )
        return state["router"]

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return router().route(event)

    return handler
