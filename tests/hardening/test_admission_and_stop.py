"""Bounded load (issue 18: 50-100 CompareFaces clients queued without bound, p99 9-21 s, /health
up to 14 s): beyond its in-flight and queue limits the server answers ThrottlingException at once,
/health answers meanwhile, /metrics counts it all; an access log line per request; and SIGTERM
lets the requests received finish before the process exits 0. Outcomes are counted, never timed."""

from __future__ import annotations

import base64
import json
import re
import signal
import threading
import time
from collections import Counter

import pytest
from hardening_wire import ADMIN, client, send, write_credentials

from benchmarks.serve_process import free_port
from rekface.errors import ThrottlingException

JSON = {"Content-Type": "application/x-amz-json-1.1"}


def target(operation: str) -> dict[str, str]:
    return {**JSON, "X-Amz-Target": f"RekognitionService.{operation}"}


def image(photo, rel: str) -> dict:
    return {"Bytes": base64.b64encode(photo(rel)).decode()}


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` whose labels include ``labels`` (summed over the others)."""
    total = None
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not m:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total = (total or 0.0) + float(m.group(2))
    return total


def test_beyond_capacity_clients_are_throttled_and_health_answers(serve, photo):
    server = serve("--max-inflight", "1", "--max-queue", "1", "--no-access-log")
    body = json.dumps(
        {
            "SourceImage": image(photo, "identities/Paul_Bremer/12.jpg"),
            "TargetImage": image(photo, "identities/Paul_Bremer/5.jpg"),
        }
    ).encode()
    outcomes: Counter[str] = Counter()
    statuses: Counter[tuple[str, int]] = Counter()
    failures: list[BaseException] = []
    health: list[int] = []
    lock = threading.Lock()

    def compare() -> None:
        for _ in range(3):
            try:
                reply = send("POST", server.url + "/", target("CompareFaces"), body, timeout=120)
            except OSError as exc:  # reset, refused, timed out: never expected
                failures.append(exc)
                continue
            with lock:
                outcomes[reply.error_code or "OK"] += 1
                statuses[(reply.error_code or "OK", reply.status)] += 1

    clients = [threading.Thread(target=compare) for _ in range(12)]
    for t in clients:
        t.start()
    while any(t.is_alive() for t in clients):
        health.append(send("GET", server.url + "/health", {}, b"", timeout=30).status)
        time.sleep(0.1)
    for t in clients:
        t.join()

    assert failures == []
    assert outcomes["ThrottlingException"] > 0, outcomes  # refused at once, not queued
    assert outcomes["OK"] > 0, outcomes
    assert set(outcomes) == {"OK", "ThrottlingException"}, outcomes
    assert {s for (code, s) in statuses if code == "ThrottlingException"} == {
        ThrottlingException.status
    }
    assert health and set(health) == {200}

    text = send("GET", server.url + "/metrics", {}, b"").body.decode()
    counted = metric(text, "rekface_requests_total", operation="CompareFaces", status="200")
    assert counted == outcomes["OK"]
    throttled = metric(text, "rekface_requests_throttled_total", operation="CompareFaces")
    assert throttled == outcomes["ThrottlingException"]
    assert metric(text, "rekface_requests_in_flight") == 0  # all answered
    assert metric(text, "rekface_requests_queued") == 0
    assert metric(text, "rekface_request_duration_seconds_count", operation="CompareFaces") == sum(
        outcomes.values()
    )


def test_metrics_with_credentials_are_on_their_own_loopback_address(serve, tmp_path, photo):
    metrics_port = free_port()
    server = serve(
        "--credentials",
        str(write_credentials(tmp_path)),
        "--metrics-address",
        f"127.0.0.1:{metrics_port}",
    )
    rekognition = client(server.url, ADMIN)
    rekognition.create_collection(CollectionId="metrics-c")
    faces = rekognition.index_faces(
        CollectionId="metrics-c", Image={"Bytes": photo("identities/Paul_Bremer/5.jpg")}
    )["FaceRecords"]
    assert send("GET", server.url + "/metrics", {}, b"").status != 200  # not public
    reply = send("GET", f"http://127.0.0.1:{metrics_port}/metrics", {}, b"")
    assert reply.status == 200
    text = reply.body.decode()
    assert metric(text, "rekface_requests_total", operation="CreateCollection", status="200") == 1
    assert metric(text, "rekface_faces_indexed_total") == len(faces)
    assert metric(text, "rekface_collection_faces", collection="metrics-c") == len(faces)


def test_one_json_access_log_line_per_request_without_image_bytes(serve, tmp_path, photo):
    server = serve("--credentials", str(write_credentials(tmp_path)))
    data = photo("identities/Paul_Bremer/5.jpg")
    client(server.url, ADMIN).detect_faces(Image={"Bytes": data})
    client(server.url, ADMIN).list_collections()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in server.output if x.startswith("{")]
        if len(lines) >= 2:
            break
        time.sleep(0.1)
    ops = {(x["operation"], x["status"], x["access_key_id"]) for x in lines}
    assert ("DetectFaces", 200, ADMIN.key) in ops and ("ListCollections", 200, ADMIN.key) in ops
    assert all(x["request_id"] and isinstance(x["ms"], (int, float)) for x in lines)
    chunk = base64.b64encode(data).decode()[1000:1100]
    assert chunk not in server.log()
    assert ADMIN.secret not in server.log()


def test_sigterm_lets_requests_in_flight_finish_then_exits_0(serve, photo):
    server = serve("--max-inflight", "2", "--max-queue", "4")
    body = json.dumps(
        {"Image": image(photo, "groups/dlib_2008_001009.jpg"), "Attributes": ["ALL"]}
    ).encode()
    replies: list[int] = []
    failures: list[BaseException] = []

    def detect() -> None:
        try:
            reply = send("POST", server.url + "/", target("DetectFaces"), body, timeout=300)
            replies.append(reply.status)
        except OSError as exc:
            failures.append(exc)

    callers = [threading.Thread(target=detect) for _ in range(3)]
    for t in callers:
        t.start()
    # SIGTERM once the server holds them (two at work, one queued).
    deadline = time.monotonic() + 120
    held = 0.0
    while time.monotonic() < deadline and held < 3:
        text = send("GET", server.url + "/metrics", {}, b"").body.decode()
        time.sleep(0.02)
        held = (metric(text, "rekface_requests_in_flight", gate="images") or 0) + (
            metric(text, "rekface_requests_queued", gate="images") or 0
        )
    if held < 3:
        pytest.fail(f"the three requests were never held at once (metrics said {held})")
    server.proc.send_signal(signal.SIGTERM)
    for t in callers:
        t.join(timeout=300)
    assert failures == [] and replies == [200, 200, 200]
    assert server.proc.wait(timeout=60) == 0
    with pytest.raises(OSError):
        send("GET", server.url + "/health", {}, b"", timeout=5)  # no longer accepting
