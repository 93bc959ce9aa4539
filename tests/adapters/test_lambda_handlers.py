"""The Lambda entry points in functions/, invoked with the sample events of events/, as
`sam local invoke` would, against S3 on moto (the photos are uploaded at test time)."""

from __future__ import annotations

import json

import pytest
from lambda_local import InProcessLambda, LambdaContext, event, load_handler

from rekface.adapters.lambda_router import Router
from rekface.spec.operations import OPERATIONS


def invoke(function: str, evt: dict) -> tuple[int, dict, dict]:
    out = load_handler(function)(evt, LambdaContext())
    assert out["isBase64Encoded"] is False
    return out["statusCode"], out["headers"], json.loads(out["body"])


def test_detect_faces_handler(samples):
    status, headers, body = invoke("detect_faces", event("detect_faces"))
    assert status == 200 and headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-RequestId"]
    (face,) = body["FaceDetails"]
    assert face["Confidence"] > 99 and len(face["Landmarks"]) == 5


def test_compare_faces_handler(samples):
    status, _, body = invoke("compare_faces", event("compare_faces"))
    assert status == 200
    assert body["FaceMatches"][0]["Similarity"] >= 80


def test_wire_protocol_handler_routes_by_target(samples):
    # On AWS, POST / forwards the event to the operation's own function (lambda_router).
    router = Router({op.name: op.snake for op in OPERATIONS}, InProcessLambda().invoke)
    evt = event("wire_protocol_detect_faces")
    out = router.route(evt)
    status, body = out["statusCode"], json.loads(out["body"])
    assert status == 200 and len(body["FaceDetails"]) == 1
    # header names arrive in any case through API Gateway
    evt["headers"] = {k.lower(): v for k, v in evt["headers"].items()}
    assert router.route(evt)["statusCode"] == 200
    evt["headers"]["x-amz-target"] = "RekognitionService.DetectLabels"
    out = router.route(evt)
    status, body = out["statusCode"], json.loads(out["body"])
    assert status == 400 and body["__type"] == "UnknownOperationException"


def test_handler_errors_are_rekognition_errors(samples):
    evt = event("detect_faces")
    evt["body"] = json.dumps(
        {"Image": {"S3Object": {"Bucket": "rekface-samples", "Name": "nope.jpg"}}}
    )
    status, headers, body = invoke("detect_faces", evt)
    assert status == 400 and body["__type"] == "InvalidS3ObjectException"
    assert headers["x-amzn-ErrorType"] == "InvalidS3ObjectException"
    evt["body"] = "{not json"
    assert invoke("detect_faces", evt)[2]["__type"] == "SerializationException"


def test_base64_encoded_body(samples):
    import base64

    evt = event("detect_faces")
    evt["body"] = base64.b64encode(evt["body"].encode()).decode()
    evt["isBase64Encoded"] = True
    assert invoke("detect_faces", evt)[0] == 200


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_a_body_that_is_not_json_is_a_serialization_exception(samples, op):
    """API Gateway no longer validates bodies (it would call this ImageTooLargeException): every
    function answers a malformed body as Rekognition does."""
    evt = event(op.snake)
    for bad in ("{not json", '{"CollectionId": "a",}', "[]", '"text"'):
        evt["body"] = bad
        status, headers, body = invoke(op.snake, evt)
        assert status == 400 and body["__type"] == "SerializationException", (bad, body)
        assert headers["x-amzn-ErrorType"] == "SerializationException"
    evt["body"], evt["isBase64Encoded"] = "not base64!", True
    assert invoke(op.snake, evt)[2]["__type"] == "SerializationException"
