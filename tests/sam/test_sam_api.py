"""`sam local start-api` + `start-lambda` on 127.0.0.1 with boto3: the Rekognition client through
POST / (the router function, which invokes each operation's function through start-lambda), the
per-operation routes with plain HTTP, and an S3 flow invoked through the Lambda API."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from local_aws import BUCKET, LocalAws

pytestmark = pytest.mark.needs_sam

SAME_A = "identities/Paul_Bremer/1.jpg"
SAME_B = "identities/Paul_Bremer/2.jpg"
OTHER = "identities/Jennifer_Aniston/1.jpg"
COLLECTION = "api-flow"


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        # A cold function container (SAM builds its image first) takes up to a minute here.
        config=Config(read_timeout=300, retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def rekognition(start_api: str) -> Any:
    return client("rekognition", start_api)


def route(
    start_api: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST /<operation-route> as API Gateway's per-operation REST routes take it (or POST /
    with an X-Amz-Target header, unsigned: the local API does not check IAM auth)."""
    req = urllib.request.Request(
        start_api + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_detect_and_compare_through_post_root(rekognition, photo) -> None:
    faces = rekognition.detect_faces(Image={"Bytes": photo(SAME_A)})["FaceDetails"]
    assert len(faces) == 1 and faces[0]["Confidence"] > 90
    out = rekognition.compare_faces(
        SourceImage={"Bytes": photo(SAME_A)}, TargetImage={"Bytes": photo(SAME_B)}
    )
    assert out["FaceMatches"][0]["Similarity"] > 80
    out = rekognition.compare_faces(
        SourceImage={"Bytes": photo(SAME_A)},
        TargetImage={"Bytes": photo(OTHER)},
        SimilarityThreshold=80,
    )
    assert out["FaceMatches"] == [] and len(out["UnmatchedFaces"]) == 1


def test_collections_and_users_through_post_root(rekognition, photo, local_aws) -> None:
    rekognition.create_collection(CollectionId=COLLECTION)
    try:
        indexed = rekognition.index_faces(
            CollectionId=COLLECTION,
            Image={"S3Object": {"Bucket": BUCKET, "Name": "photos/face-1.jpg"}},
            ExternalImageId="paul",
            MaxFaces=1,
        )["FaceRecords"]
        face_id = indexed[0]["Face"]["FaceId"]
        matches = rekognition.search_faces_by_image(
            CollectionId=COLLECTION, Image={"Bytes": photo(SAME_B)}
        )["FaceMatches"]
        assert [m["Face"]["FaceId"] for m in matches] == [face_id]
        rekognition.create_user(CollectionId=COLLECTION, UserId="paul")
        out = rekognition.associate_faces(CollectionId=COLLECTION, UserId="paul", FaceIds=[face_id])
        assert [f["FaceId"] for f in out["AssociatedFaces"]] == [face_id]
        users = rekognition.search_users_by_image(
            CollectionId=COLLECTION, Image={"Bytes": photo(SAME_B)}
        )["UserMatches"]
        assert [u["User"]["UserId"] for u in users] == ["paul"]
        listed = rekognition.list_users(CollectionId=COLLECTION)["Users"]
        assert [u["UserId"] for u in listed] == ["paul"]
        # A Rekognition error crosses router, start-lambda and API Gateway as the same error.
        with pytest.raises(rekognition.exceptions.ResourceNotFoundException):
            rekognition.describe_collection(CollectionId="no-such-collection")
    finally:
        rekognition.delete_collection(CollectionId=COLLECTION)


def test_per_operation_routes(start_api: str, photo) -> None:
    status, out = route(
        start_api,
        "/detect-faces",
        {"Image": {"Bytes": base64.b64encode(photo(SAME_A)).decode()}},
    )
    assert status == 200 and len(out["FaceDetails"]) == 1
    status, out = route(start_api, "/list-collections", {"MaxResults": 5})
    assert status == 200 and "CollectionIds" in out
    # An invalid request gets the same Rekognition error on its route as through POST /.
    bad = {"MaxResults": -1}
    status, out = route(start_api, "/list-collections", bad)
    root_status, root_out = route(
        start_api, "/", bad, {"X-Amz-Target": "RekognitionService.ListCollections"}
    )
    assert status == root_status and 400 <= status < 500, (out, root_out)
    assert out["__type"] == root_out["__type"] and out["__type"].endswith("Exception")


def test_s3_flow_through_the_lambda_api(
    rekognition, start_lambda: str, local_aws: LocalAws, faces_dir
) -> None:
    """An object put under index/<collection>/ in (moto's) S3, the S3 notification's event sent to
    the S3 flows function through start-lambda: the result lands under results/."""
    rekognition.create_collection(CollectionId="api-s3")
    s3 = local_aws.client("s3")
    key = "index/api-s3/bob.jpg"
    s3.put_object(Bucket=BUCKET, Key=key, Body=(faces_dir / OTHER).read_bytes())
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
    event = json.loads((Path(__file__).parents[2] / "events" / "s3_index.json").read_text())
    event["Records"][0]["s3"]["object"].update({"key": key, "eTag": etag})
    lam = client("lambda", start_lambda)
    out = lam.invoke(FunctionName="S3EventsFunction", Payload=json.dumps(event).encode())
    assert "FunctionError" not in out, out["Payload"].read()
    result = s3.get_object(Bucket=BUCKET, Key="results/index/api-s3/bob.jpg.json")
    body = json.loads(result["Body"].read())
    assert result["Metadata"]["status"] == "200", body
    assert body["FaceRecords"][0]["Face"]["ExternalImageId"] == "bob"
    faces = rekognition.list_faces(CollectionId="api-s3")["Faces"]
    assert [f["ExternalImageId"] for f in faces] == ["bob"]
    rekognition.delete_collection(CollectionId="api-s3")
