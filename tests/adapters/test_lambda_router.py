"""POST / on AWS: the router forwards each wire request, unchanged, to its operation's function."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from lambda_local import InProcessLambda, LambdaContext, event, load_handler

from rekface.adapters.lambda_router import FUNCTIONS_ENV, Router, functions_from_env, lambda_invoker
from rekface.spec.operations import OPERATIONS

FUNCTIONS = {op.name: op.snake for op in OPERATIONS}


def body(out: dict) -> dict:
    return json.loads(out["body"])


def test_routes_to_the_operation_function_with_the_same_event(samples):
    lam = InProcessLambda()
    router = Router(FUNCTIONS, lam.invoke)
    out = router.route(event("wire_protocol_compare_faces"))
    assert lam.calls == ["compare_faces"]
    assert out["statusCode"] == 200
    assert body(out)["FaceMatches"][0]["Similarity"] >= 80
    out = router.route(event("wire_protocol_detect_faces"))
    assert lam.calls[-1] == "detect_faces" and len(body(out)["FaceDetails"]) == 1


@pytest.mark.parametrize(
    ("target", "error"),
    [
        (None, "UnknownOperationException"),
        ("RekognitionService.DetectLabels", "UnknownOperationException"),
        ("DynamoDB_20120810.GetItem", "UnknownOperationException"),
    ],
)
def test_unknown_targets_never_invoke_anything(target, error):
    lam = InProcessLambda()
    evt = event("wire_protocol_detect_faces")
    evt["headers"] = {k: v for k, v in evt["headers"].items() if k != "X-Amz-Target"}
    if target:
        evt["headers"]["x-amz-target"] = target  # any header case
    out = Router(FUNCTIONS, lam.invoke).route(evt)
    assert out["statusCode"] == 400 and body(out)["__type"] == error
    assert out["headers"]["x-amzn-ErrorType"] == error
    assert lam.calls == []


def test_a_crashed_function_is_an_internal_error_without_details():
    def crash(_name: str, _payload: bytes) -> tuple[bytes, str | None]:
        return b'{"errorMessage": "secret stack trace", "errorType": "KeyError"}', "Unhandled"

    out = Router(FUNCTIONS, crash).route(event("wire_protocol_detect_faces"))
    assert out["statusCode"] == 500 and body(out)["__type"] == "InternalServerError"
    assert "secret" not in out["body"]


def test_a_missing_function_mapping_is_a_server_fault():
    functions = {k: v for k, v in FUNCTIONS.items() if k != "DetectFaces"}
    out = Router(functions, InProcessLambda().invoke).route(event("wire_protocol_detect_faces"))
    assert out["statusCode"] == 500 and body(out)["__type"] == "InternalServerError"


def test_lambda_throttling_becomes_a_retryable_throttling_exception():
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
        out = Router(FUNCTIONS, lambda_invoker(client)).route(event("wire_protocol_detect_faces"))
    assert body(out)["__type"] == "ThrottlingException" and out["statusCode"] >= 500


def test_functions_map_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(FUNCTIONS_ENV, json.dumps({"DetectFaces": "Rekface-DetectFaces-1A2B"}))
    assert functions_from_env() == {"DetectFaces": "Rekface-DetectFaces-1A2B"}
    monkeypatch.delenv(FUNCTIONS_ENV)
    with pytest.raises(RuntimeError, match=FUNCTIONS_ENV):
        functions_from_env()


def test_the_entry_point_routes_through_the_lambda_api(monkeypatch):
    """functions/wire_protocol/app.py builds a real boto3 Lambda client from its environment."""
    monkeypatch.setenv(FUNCTIONS_ENV, json.dumps(FUNCTIONS))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    handler = load_handler("wire_protocol")
    stubbed = boto3.client("lambda", region_name="us-east-1")
    answer = {"statusCode": 200, "headers": {}, "body": "{}", "isBase64Encoded": False}
    with Stubber(stubbed) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": _streaming(json.dumps(answer).encode())},
            {
                "FunctionName": "detect_faces",
                "InvocationType": "RequestResponse",
                "Payload": json.dumps(event("wire_protocol_detect_faces")).encode(),
            },
        )
        monkeypatch.setattr(boto3, "client", lambda *a, **k: stubbed)
        assert handler(event("wire_protocol_detect_faces"), LambdaContext()) == answer


def _streaming(data: bytes):
    import io

    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(data), len(data))
