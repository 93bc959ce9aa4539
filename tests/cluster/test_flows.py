"""The boto3 flows of the collections and users suites, unchanged, through the balancer: each call
may land on any of the three servers, so every read-after-write, every page of a listing and every
ClientRequestToken crosses processes (the shared store, the search caches' version check, the
shared token secret)."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from benchmarks.shared_faces import image_bytes
from tests.cluster.harness import client, wait_until
from tests.integration.test_collections_boto3 import (
    test_client_mistakes_are_400s as client_mistakes_flow,
)
from tests.integration.test_collections_boto3 import test_full_collection_flow as collection_flow
from tests.integration.test_users_boto3 import test_users_flow as users_flow


def test_collection_flow(rekognition):
    collection_flow(rekognition)


def test_client_mistakes(rekognition):
    client_mistakes_flow(rekognition)


def test_users_flow(rekognition):
    users_flow(rekognition)


def test_the_balancer_spreads_calls_over_every_server(cluster, rekognition):
    lb = cluster.balancers[0]
    before = len(lb.upstream_hits())
    for _ in range(12):
        rekognition.list_collections(MaxResults=1)
    wait_until(lambda: len(lb.upstream_hits()) >= before + 12, 10, "the access log lines")
    upstreams = {hit.server for hit in lb.upstream_hits()[before:]}
    assert upstreams == {f"127.0.0.1:{s.port}" for s in cluster.servers}


def test_every_server_sees_a_write_made_through_another(cluster):
    cid = f"coherence-{uuid.uuid4().hex[:10]}"
    first, *others = [client(s.url, attempts=1) for s in cluster.servers]
    first.create_collection(CollectionId=cid)
    try:
        for other in others:  # warm their caches on the empty collection
            assert other.describe_collection(CollectionId=cid)["FaceCount"] == 0
            other.search_faces_by_image(
                CollectionId=cid, Image={"Bytes": image_bytes("identities/Ann_Veneman/1.jpg")}
            )
        (record,) = first.index_faces(
            CollectionId=cid,
            Image={"Bytes": image_bytes("identities/Ann_Veneman/1.jpg")},
            MaxFaces=1,
        )["FaceRecords"]
        for other in others:
            assert other.describe_collection(CollectionId=cid)["FaceCount"] == 1
            found = other.search_faces_by_image(
                CollectionId=cid, Image={"Bytes": image_bytes("identities/Ann_Veneman/2.jpg")}
            )["FaceMatches"]
            assert [m["Face"]["FaceId"] for m in found] == [record["Face"]["FaceId"]]
        others[-1].delete_faces(CollectionId=cid, FaceIds=[record["Face"]["FaceId"]])
        for server in (first, *others[:-1]):
            found = server.search_faces_by_image(
                CollectionId=cid, Image={"Bytes": image_bytes("identities/Ann_Veneman/2.jpg")}
            )["FaceMatches"]
            assert found == []
    finally:
        first.delete_collection(CollectionId=cid)


def test_an_oversized_body_is_the_services_error_from_the_balancer(cluster, rekognition):
    """nginx refuses a body over 8 MiB itself, in the wire format boto3 parses (no HTML 413)."""
    lb = cluster.balancers[0]
    before = len(lb.upstream_hits())
    with pytest.raises(ClientError) as exc:
        rekognition.detect_faces(Image={"Bytes": b"\xff" * (7 << 20)})  # ~9.3 MiB as base64
    assert exc.value.response["Error"]["Code"] == "ImageTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # nginx logs a request just after answering it
    wait_until(lambda: len(lb.upstream_hits()) > before, 10, "the access log line")
    last = lb.upstream_hits()[-1]
    assert (last.status, last.tried) == (400, ["-"])  # answered by nginx: no server read it
