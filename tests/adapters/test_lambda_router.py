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


# -- the router's Lambda client: one attempt, timeouts, every failure a Rekognition error ------


class FakeLambda:
    """Lambda's Invoke API on 127.0.0.1, answering each request with the next scripted reply
    (status, headers, body, delay in seconds), and counting the requests it receives."""

    def __init__(self, replies):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.replies = list(replies)
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append(self.path)
                status, headers, body, delay = fake.replies.pop(0)
                if delay:
                    import time

                    time.sleep(delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_lambda():
    fakes = []

    def make(*replies):
        fakes.append(FakeLambda(replies))
        return fakes[-1]

    yield make
    for fake in fakes:
        fake.close()


def routed_through(fake: FakeLambda, function_timeout_s: int = 29) -> dict:
    from rekface.adapters.lambda_router import client_config

    client = boto3.client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=fake.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=client_config(function_timeout_s),
    )
    return Router(FUNCTIONS, lambda_invoker(client)).route(event("wire_protocol_detect_faces"))


def lambda_error(code: str, status: int, message: str = "details: arn:aws:lambda:secret"):
    body = json.dumps({"Type": "User", "message": message}).encode()
    return (status, {"x-amzn-ErrorType": code, "Content-Type": "application/json"}, body, 0)


def test_client_config_one_attempt_and_timeouts():
    from rekface.adapters.lambda_router import client_config

    config = client_config(29)
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.read_timeout > 29 and config.connect_timeout <= 5


@pytest.mark.parametrize(
    ("code", "status", "error", "answer"),
    [
        ("TooManyRequestsException", 429, "ThrottlingException", 503),
        ("ResourceConflictException", 409, "ThrottlingException", 503),
        ("RequestTooLargeException", 413, "ImageTooLargeException", 400),
        ("ServiceException", 500, "InternalServerError", 500),
        ("ResourceNotFoundException", 404, "InternalServerError", 500),
        ("AccessDeniedException", 403, "InternalServerError", 500),
    ],
)
def test_invoke_errors_are_rekognition_errors_after_one_attempt(
    fake_lambda, code, status, error, answer
):
    # Two replies scripted: a retry would get the second (a success) and hide the error.
    ok = {"statusCode": 200, "headers": {}, "body": "{}", "isBase64Encoded": False}
    fake = fake_lambda(lambda_error(code, status), (200, {}, json.dumps(ok).encode(), 0))
    out = routed_through(fake)
    assert len(fake.requests) == 1, "the router's client must not retry"
    assert body(out)["__type"] == error and out["statusCode"] == answer
    assert "secret" not in out["body"] and "arn:" not in out["body"]


def test_a_read_timeout_is_an_internal_error_after_one_attempt(fake_lambda):
    # function_timeout_s=1: the client waits 1 + READ_TIMEOUT_MARGIN_S s, the reply comes later.
    ok = {"statusCode": 200, "headers": {}, "body": "{}", "isBase64Encoded": False}
    fake = fake_lambda((200, {}, json.dumps(ok).encode(), 4), (200, {}, b"{}", 0))
    out = routed_through(fake, function_timeout_s=1)
    assert len(fake.requests) == 1
    assert body(out)["__type"] == "InternalServerError" and out["statusCode"] == 500


def test_function_errors_and_non_answers_are_internal_errors(fake_lambda):
    crash = json.dumps({"errorMessage": "Task timed out after 29.00 seconds"}).encode()
    fake = fake_lambda(
        (200, {"X-Amz-Function-Error": "Unhandled"}, crash, 0),
        (200, {}, b"not json", 0),
        (200, {}, b'{"no": "statusCode"}', 0),
    )
    for _ in range(3):
        out = routed_through(fake)
        assert body(out)["__type"] == "InternalServerError" and "timed out" not in out["body"]
    assert len(fake.requests) == 3


def test_the_function_timeout_comes_from_the_environment():
    from rekface.adapters.lambda_router import TIMEOUT_ENV, function_timeout_from_env

    assert function_timeout_from_env({}) == 29
    assert function_timeout_from_env({TIMEOUT_ENV: "12"}) == 12
    with pytest.raises(RuntimeError, match=TIMEOUT_ENV):
        function_timeout_from_env({TIMEOUT_ENV: "soon"})
