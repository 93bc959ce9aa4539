"""Raw wire requests (hand-made X-Amz-Target headers), as other SDKs and tools send them."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from email.message import Message

import pytest


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Message, dict]:
    """Status, headers (looked up case-insensitively, as HTTP means them) and JSON body."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read())


def target(name: str) -> dict[str, str]:
    return {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"RekognitionService.{name}",
    }


def test_wire_request_and_headers(server_url, photo):
    body = json.dumps(
        {"Image": {"Bytes": base64.b64encode(photo("identities/Paul_Bremer/5.jpg")).decode()}}
    )
    status, headers, out = post(server_url + "/", body.encode(), target("DetectFaces"))
    assert status == 200 and len(out["FaceDetails"]) == 1
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-RequestId"]


def test_per_operation_route(server_url, photo):
    body = json.dumps(
        {"Image": {"Bytes": base64.b64encode(photo("identities/Paul_Bremer/5.jpg")).decode()}}
    )
    status, _, out = post(
        server_url + "/detect-faces", body.encode(), {"Content-Type": "application/json"}
    )
    assert status == 200 and len(out["FaceDetails"]) == 1


@pytest.mark.parametrize(
    "headers,body,status,code",
    [
        (target("DetectLabels"), b"{}", 400, "UnknownOperationException"),
        ({"Content-Type": "application/x-amz-json-1.1"}, b"{}", 400, "UnknownOperationException"),
        (target("DetectFaces"), b"{not json", 400, "SerializationException"),
        (target("DetectFaces"), b"[1, 2]", 400, "SerializationException"),
        (target("DetectFaces"), b"\xff\xfe", 400, "SerializationException"),
        (target("DetectFaces"), b'{"Image": {"Bytes": "***"}}', 400, "SerializationException"),
        (target("DetectFaces"), b"", 400, "InvalidParameterException"),
        (target("DetectFaces"), b'{"Image": "x"}', 400, "InvalidParameterException"),
        (target("DetectFaces"), b'{"Image": {"Bytes": 5}}', 400, "InvalidParameterException"),
        (
            target("CompareFaces"),
            b'{"SourceImage": {}, "TargetImage": {}, "SimilarityThreshold": "x"}',
            400,
            "InvalidParameterException",
        ),
    ],
)
def test_malformed_requests_get_4xx_rekognition_errors(server_url, headers, body, status, code):
    got, _, out = post(server_url + "/", body, headers)
    assert (got, out["__type"]) == (status, code)
    assert out["Message"]


def test_unknown_path_and_oversized_body(server_url):
    status, _, out = post(server_url + "/nope", b"{}", {"Content-Type": "application/json"})
    assert status == 404 and out["__type"] == "UnknownOperationException"
    big = b'{"Image": {"Bytes": "' + b"A" * (9 << 20) + b'"}}'
    status, _, out = post(server_url + "/", big, target("DetectFaces"))
    assert status == 400 and out["__type"] == "ImageTooLargeException"


def test_health(server_url):
    with urllib.request.urlopen(server_url + "/health", timeout=10) as resp:
        assert resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
