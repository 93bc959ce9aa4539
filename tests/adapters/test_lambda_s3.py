"""The S3 flows end to end against moto: put the object, hand the handler the ObjectCreated event,
read the result object. Real models on real photos."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.exceptions import ClientError
from lambda_local import LambdaContext, event, load_handler
from moto import mock_aws

from rekface import operations
from rekface.adapters import lambda_api
from rekface.adapters.bootstrap import build_store
from rekface.adapters.lambda_s3 import (
    IdempotencyGuard,
    Job,
    ObjectCreated,
    Result,
    S3Flows,
    process,
)
from rekface.adapters.s3 import S3ImageFetcher
from rekface.operations.context import Context
from rekface.search.memory import InMemoryExactSearch
from rekface.stores.dynamodb import create_table

BUCKET = "rekface-samples"
SAME_A, SAME_B = "identities/Paul_Bremer/12.jpg", "identities/Paul_Bremer/5.jpg"
OTHER = "identities/Kate_Capshaw/2.jpg"


def s3_event(*objects: tuple[str, str]) -> dict[str, Any]:
    """An ObjectCreated event (the shape of events/s3_*.json) for (key, etag) pairs."""
    template = event("s3_compare_source")["Records"][0]
    records = []
    for key, etag in objects:
        record = json.loads(json.dumps(template))
        record["s3"]["bucket"]["name"] = BUCKET
        record["s3"]["object"].update(key=key.replace(" ", "+"), eTag=etag)
        records.append(record)
    return {"Records": records}


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class S3Limits:
    """The moto client with the limits real S3 enforces on PutObject and moto does not: a key of
    at most 1,024 UTF-8 bytes, at most 2 KB of user metadata (botocore itself refuses non-ASCII
    metadata)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kw: Any) -> Any:
        if len(kw["Key"].encode("utf-8")) > 1024:
            raise _s3_error("KeyTooLongError", "Your key is too long")
        meta = kw.get("Metadata", {})
        if sum(len(k.encode()) + len(v.encode()) for k, v in meta.items()) > 2048:
            raise _s3_error("MetadataTooLarge", "Your metadata headers exceed the maximum")
        return self._client.put_object(**kw)


def _s3_error(code: str, message: str) -> ClientError:
    error = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(error, "PutObject")  # type: ignore[arg-type]


@pytest.fixture
def flows(s3, settings, engine) -> S3Flows:
    ctx = Context(settings=settings, engine=engine, images=S3ImageFetcher(s3))
    return S3Flows(ctx, S3Limits(s3))


def put(s3, key: str, data: bytes) -> str:
    return s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"]


def result(s3, key: str) -> tuple[dict[str, Any], dict[str, str]]:
    obj = s3.get_object(Bucket=BUCKET, Key=key)
    return json.loads(obj["Body"].read()), obj["Metadata"]


def keys(s3, prefix: str = "results/") -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_compare_runs_once_both_images_exist(s3, flows, photo):
    etag = put(s3, "compare/job 1/source.jpg", photo(SAME_A))
    assert process(flows, s3_event(("compare/job 1/source.jpg", etag))) == []
    assert keys(s3) == []  # waiting for the target

    etag = put(s3, "compare/job 1/target.jpg", photo(SAME_B))
    (job,) = process(flows, s3_event(("compare/job 1/target.jpg", etag)))
    assert job.operation == "CompareFaces" and job.result_key == "results/compare/job 1.json"
    body, meta = result(s3, "results/compare/job 1.json")
    assert meta["status"] == "200" and meta["operation"] == "CompareFaces"
    assert set(body) >= {"SourceImageFace", "FaceMatches", "UnmatchedFaces"}
    assert body["FaceMatches"][0]["Similarity"] >= 80
    assert 0 <= body["FaceMatches"][0]["Face"]["BoundingBox"]["Left"] <= 1

    # A redelivered event answers the same, byte for byte.
    first = s3.get_object(Bucket=BUCKET, Key="results/compare/job 1.json")["Body"].read()
    process(flows, s3_event(("compare/job 1/target.jpg", etag)))
    assert s3.get_object(Bucket=BUCKET, Key="results/compare/job 1.json")["Body"].read() == first


def test_compare_of_two_people_has_no_match(s3, flows, photo):
    put(s3, "compare/j2/source.png", photo(SAME_A))
    etag = put(s3, "compare/j2/target.jpg", photo(OTHER))
    process(flows, s3_event(("compare/j2/target.jpg", etag)))
    body, _ = result(s3, "results/compare/j2.json")
    assert body["FaceMatches"] == [] and body["UnmatchedFaces"]


def test_a_bad_image_is_an_error_result_not_a_retry(s3, flows, photo):
    put(s3, "compare/j3/source.jpg", b"this is not an image")
    etag = put(s3, "compare/j3/target.jpg", photo(SAME_B))
    process(flows, s3_event(("compare/j3/target.jpg", etag)))  # does not raise
    body, meta = result(s3, "results/compare/j3.json")
    assert body["__type"] == "InvalidImageFormatException" and body["Message"]
    assert meta["status"] == "400"


@pytest.mark.parametrize(
    "key",
    ["compare/j4/other.jpg", "index/c1/deeper/x.jpg", "search/only-one-part.jpg", "index//x.jpg"],
)
def test_keys_off_the_layout_get_an_error_result(s3, flows, key):
    etag = put(s3, key, b"x")
    assert process(flows, s3_event((key, etag))) == []
    body, meta = result(s3, f"results/invalid/{key}.json")
    assert body["__type"] == "InvalidParameterException" and "layout" in body["Message"]
    assert meta["status"] == "400"


def test_results_and_foreign_keys_never_trigger_work(s3, flows):
    for key in ("results/compare/j1.json", "photos/a.jpg"):
        etag = put(s3, key, b"{}")
        assert process(flows, s3_event((key, etag))) == []
    assert keys(s3) == ["results/compare/j1.json"]  # nothing written back


def test_a_server_fault_fails_the_invocation_after_the_other_records(s3, flows, photo):
    put(s3, "compare/j5/source.jpg", photo(SAME_A))
    etag = put(s3, "compare/j5/target.jpg", photo(SAME_B))
    evt = s3_event(("compare/j5/target.jpg", etag))
    broken = json.loads(json.dumps(evt["Records"][0]))
    broken["s3"]["bucket"]["name"] = "no-such-bucket"  # S3 answers NoSuchBucket: not the client's
    evt["Records"].insert(0, broken)
    with pytest.raises(Exception, match="NoSuchBucket"):
        process(flows, evt)
    assert "results/compare/j5.json" in keys(s3)  # the good record was still processed


def test_idempotency_guard_runs_a_job_once(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        guard = IdempotencyGuard(_persistence(_idempotency_table()))
        guard.bind(LambdaContext())
        calls: list[int] = []

        def compute() -> Result:
            calls.append(1)
            return Result(200, {"FaceRecords": [{"Face": {"FaceId": f"id-{len(calls)}"}}]})

        job = Job("IndexFaces", {}, "results/index/c/a.jpg.json", ObjectCreated(BUCKET, "k", "e1"))
        first = guard.run(job, compute)
        again = guard.run(job, compute)
        assert calls == [1] and again == first
        # Another upload (new ETag) of the same key is new work.
        other = Job("IndexFaces", {}, "r", ObjectCreated(BUCKET, "k", "e2"))
        assert guard.run(other, compute).body["FaceRecords"][0]["Face"]["FaceId"] == "id-2"


def test_idempotency_guard_forgets_a_failed_attempt(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        guard = IdempotencyGuard(_persistence(_idempotency_table()))
        guard.bind(LambdaContext())
        job = Job("IndexFaces", {}, "r", ObjectCreated(BUCKET, "k", "e1"))

        def boom() -> Result:
            raise RuntimeError("DynamoDB throttled")

        with pytest.raises(RuntimeError):
            guard.run(job, boom)
        assert guard.run(job, lambda: Result(200, {"ok": True})).body == {"ok": True}


@pytest.fixture
def aws_flows(s3, settings, engine) -> S3Flows:
    """The flows as on AWS: DynamoDB store and idempotency table (moto), S3 (moto)."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(ddb, "rekface")
    aws = replace(settings, store="dynamodb", table_name="rekface")
    store = build_store(aws, ddb)
    ctx = Context(aws, engine, S3ImageFetcher(s3), store=store, search=InMemoryExactSearch(store))
    guard = IdempotencyGuard(_persistence(_idempotency_table()))
    guard.bind(LambdaContext())
    operations.run(ctx, "CreateCollection", {"CollectionId": "family"})
    return S3Flows(ctx, S3Limits(s3), guard)


def test_index_then_search(s3, aws_flows, photo):
    etag = put(s3, "index/family/paul.jpg", photo(SAME_A))
    (job,) = process(aws_flows, s3_event(("index/family/paul.jpg", etag)))
    assert job.operation == "IndexFaces"
    body, meta = result(s3, "results/index/family/paul.jpg.json")
    assert meta["status"] == "200"
    (record,) = body["FaceRecords"]
    assert record["Face"]["ExternalImageId"] == "paul"
    face_id = record["Face"]["FaceId"]

    etag = put(s3, "search/family/visitor 1.jpg", photo(SAME_B))
    process(aws_flows, s3_event(("search/family/visitor 1.jpg", etag)))
    body, _ = result(s3, "results/search/family/visitor 1.jpg.json")
    (match,) = body["FaceMatches"]
    assert match["Face"]["FaceId"] == face_id and match["Similarity"] >= 80
    assert body["SearchedFaceBoundingBox"]["Width"] > 0


def test_redelivered_index_events_add_no_faces(s3, aws_flows, photo):
    etag = put(s3, "index/family/paul.jpg", photo(SAME_A))
    evt = s3_event(("index/family/paul.jpg", etag))
    process(aws_flows, evt)
    first = s3.get_object(Bucket=BUCKET, Key="results/index/family/paul.jpg.json")["Body"].read()
    process(aws_flows, evt)
    process(aws_flows, s3_event(("index/family/paul.jpg", etag), ("index/family/paul.jpg", etag)))
    faces = operations.run(aws_flows.ctx, "ListFaces", {"CollectionId": "family"})["Faces"]
    assert len(faces) == 1
    again = s3.get_object(Bucket=BUCKET, Key="results/index/family/paul.jpg.json")["Body"].read()
    assert json.loads(again) == json.loads(first)  # the recorded answer, not a new FaceId

    # New bytes under the same key are a new image: indexed.
    etag = put(s3, "index/family/paul.jpg", photo(SAME_B))
    process(aws_flows, s3_event(("index/family/paul.jpg", etag)))
    faces = operations.run(aws_flows.ctx, "ListFaces", {"CollectionId": "family"})["Faces"]
    assert len(faces) == 2


def test_client_errors_of_index_and_search_are_results(s3, aws_flows, photo, faces_dir):
    etag = put(s3, "index/nobody/paul.jpg", photo(SAME_A))
    process(aws_flows, s3_event(("index/nobody/paul.jpg", etag)))
    body, meta = result(s3, "results/index/nobody/paul.jpg.json")
    assert body["__type"] == "ResourceNotFoundException" and meta["status"] == "400"

    no_face = sorted((faces_dir / "nofaces").iterdir())[0]
    etag = put(s3, "search/family/empty.jpg", no_face.read_bytes())
    process(aws_flows, s3_event(("search/family/empty.jpg", etag)))
    body, _ = result(s3, "results/search/family/empty.jpg.json")
    assert body["__type"] in ("InvalidParameterException", "InvalidImageFormatException")

    etag = put(s3, "index/family/bad:name?.jpg", photo(SAME_A))
    process(aws_flows, s3_event(("index/family/bad:name?.jpg", etag)))
    body, _ = result(s3, "results/index/family/bad:name?.jpg.json")
    assert body["__type"] == "InvalidParameterException"  # '?' is not allowed in ExternalImageId


def test_the_deployed_functions_with_the_sample_events(s3, photo, monkeypatch, tmp_path):
    """functions/*/app.py as deployed (DynamoDB store, idempotency table), fed events/*.json:
    CreateCollection over API Gateway, then the S3 flows."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(ddb, "rekface")
    monkeypatch.setenv("REKFACE_STORE", "dynamodb")
    monkeypatch.setenv("REKFACE_TABLE_NAME", "rekface")
    monkeypatch.setenv("REKFACE_IDEMPOTENCY_TABLE", _idempotency_table())
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    lambda_api.reset()
    created = load_handler("create_collection")(event("create_collection"), LambdaContext())
    assert created["statusCode"] == 200, created["body"]

    handler = load_handler("s3_events")
    put(s3, "index/family/alice.jpg", photo(SAME_A))
    out = handler(event("s3_index"), LambdaContext())
    assert out["processed"][0]["operation"] == "IndexFaces"
    put(s3, "compare/job-1/source.jpg", photo(SAME_A))
    assert handler(event("s3_compare_source"), LambdaContext()) == {"processed": []}
    put(s3, "compare/job-1/target.jpg", photo(SAME_B))
    out = handler(event("s3_compare_target"), LambdaContext())
    assert out == {
        "processed": [{"operation": "CompareFaces", "result": "results/compare/job-1.json"}]
    }
    put(s3, "search/family/visitor.jpg", photo(SAME_B))
    handler(event("s3_search"), LambdaContext())

    body, _ = result(s3, "results/compare/job-1.json")
    assert body["FaceMatches"][0]["Similarity"] >= 80
    body, _ = result(s3, "results/search/family/visitor.jpg.json")
    assert body["FaceMatches"][0]["Face"]["ExternalImageId"] == "alice"
    lambda_api.reset()


def _idempotency_table() -> str:
    """The idempotency table as the stack creates it (partition key ``id``, TTL ``expiration``)."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName="rekface-idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "rekface-idempotency"


def _persistence(table: str):
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=table)


# -- issue 18: result keys that never collide, any key S3 accepts answered, never retried -------


def hashed(name: str) -> str:
    """Where the result of ``name`` goes when its natural key would not fit S3 (the rule in the
    module's docstring, computed independently)."""
    return f"results/hashed/{hashlib.sha256(name.encode()).hexdigest()}.json"


def test_a_key_named_like_a_job_does_not_overwrite_its_result(s3, flows, photo):
    put(s3, "compare/job1/source.jpg", photo(SAME_A))
    etag = put(s3, "compare/job1/target.jpg", photo(SAME_B))
    process(flows, s3_event(("compare/job1/target.jpg", etag)))
    for key in ("compare/job1", "compare/job1.json", "compare/job1/result"):
        etag = put(s3, key, b"x")
        assert process(flows, s3_event((key, etag))) == []
        body, _ = result(s3, f"results/invalid/{key}.json")
        assert body["__type"] == "InvalidParameterException"
    body, meta = result(s3, "results/compare/job1.json")
    assert meta["status"] == "200" and body["FaceMatches"][0]["Similarity"] >= 80


def test_unicode_keys_are_answered_and_never_retried(s3, aws_flows, photo):
    etag = put(s3, "index/family/paul.jpg", photo(SAME_A))
    process(aws_flows, s3_event(("index/family/paul.jpg", etag)))

    # A unicode ExternalImageId is not allowed by Rekognition: an error result, written.
    key = "index/family/ålice.jpg"
    etag = put(s3, key, photo(SAME_A))
    assert len(process(aws_flows, s3_event((key, etag)))) == 1  # does not raise
    body, meta = result(s3, f"results/{key}.json")
    assert body["__type"] == "InvalidParameterException" and meta["status"] == "400"
    assert meta["source-key"] == quote(key) and meta["source-key"].isascii()

    # A unicode search name is fine: the real answer, written.
    key = "search/family/bësøk 1.jpg"
    etag = put(s3, key, photo(SAME_B))
    process(aws_flows, s3_event((key, etag)))
    body, meta = result(s3, f"results/{key}.json")
    assert meta["status"] == "200" and body["FaceMatches"][0]["Face"]["ExternalImageId"] == "paul"


def test_unicode_compare_job(s3, flows, photo):
    put(s3, "compare/jöb/source.jpg", photo(SAME_A))
    etag = put(s3, "compare/jöb/target.jpg", photo(SAME_B))
    (job,) = process(flows, s3_event(("compare/jöb/target.jpg", etag)))
    assert job.result_key == "results/compare/jöb.json"
    body, meta = result(s3, job.result_key)
    assert meta["status"] == "200" and body["FaceMatches"]


@pytest.mark.parametrize(
    "key", ["index/../x.jpg", "index/./x.jpg", "search/../x.jpg", "compare/../source.jpg"]
)
def test_dot_segments_are_refused_not_run(s3, aws_flows, photo, key):
    operations.run(aws_flows.ctx, "CreateCollection", {"CollectionId": ".."})
    operations.run(aws_flows.ctx, "CreateCollection", {"CollectionId": "."})
    put(s3, "compare/../target.jpg", photo(SAME_B))
    etag = put(s3, key, photo(SAME_A))
    assert process(aws_flows, s3_event((key, etag))) == []
    for collection in ("..", "."):
        assert (
            operations.run(aws_flows.ctx, "ListFaces", {"CollectionId": collection})["Faces"] == []
        )
    # The answer's key holds no dot segment either (some S3 tools resolve them as paths).
    body, meta = result(s3, hashed(f"invalid/{key}"))
    assert body["__type"] == "InvalidParameterException" and meta["status"] == "400"


@pytest.mark.parametrize("prefix", ["index/family/", "search/family/", "compare/"])
def test_keys_near_s3s_limit_get_results_that_fit_it(s3, aws_flows, photo, prefix):
    suffix = "/source.jpg" if prefix == "compare/" else ".jpg"
    key = prefix + "é" * ((1024 - len(prefix) - len(suffix)) // 2) + suffix
    assert 1018 < len(key.encode()) <= 1024  # S3 takes it; results/<key>.json would not fit
    etag = put(s3, key, photo(SAME_A))
    process(aws_flows, s3_event((key, etag)))  # S3Limits: a result key over 1,024 bytes raises
    written = keys(s3)
    assert all(len(k.encode()) <= 1024 for k in written)
    if prefix == "compare/":
        assert written == []  # waiting for the target, whose event runs the comparison
        target = key.replace("/source.jpg", "/target.jpg")
        etag = put(s3, target, photo(SAME_B))
        (job,) = process(aws_flows, s3_event((target, etag)))
        assert job.result_key == hashed(key.removesuffix("/source.jpg"))  # 1,025 bytes otherwise
        body, _ = result(s3, job.result_key)
        assert body["FaceMatches"]
        return
    body, meta = result(s3, hashed(key))
    if prefix == "index/family/":
        assert body["__type"] == "InvalidParameterException"  # ExternalImageId over 255
    else:
        assert meta["status"] == "200" and "FaceMatches" in body
    assert "source-key" not in meta  # 3 KB percent-encoded: over S3's 2 KB of metadata


def test_long_keys_off_the_layout_are_answered_under_a_short_key(s3, flows):
    key = "compare/" + "x" * 1000 + "/other.jpg"
    etag = put(s3, key, b"x")
    process(flows, s3_event((key, etag)))
    body, _ = result(s3, hashed(f"invalid/{key}"))
    assert body["__type"] == "InvalidParameterException" and len(body["Message"]) < 400
