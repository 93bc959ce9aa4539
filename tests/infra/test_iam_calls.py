"""IAM checked call by call: every function of the synthesized stack runs, in process, with the
environment the template gives it, on moto (which ignores IAM); each AWS call it makes (and each
call Lambda makes with its role: logs, traces, the dead-letter queue) is decided against THAT
function's policy from the template. A call not allowed fails the test.

Covered: DynamoDB (store table, idempotency table), S3 (objects by key, listing with its prefix
condition, results written), Secrets Manager (the token secret), Lambda Invoke (the router),
SQS (the S3 flows' DLQ), CloudWatch Logs and X-Ray (Lambda's own calls with the role).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from iam_calls import Recorder, Where, invoke_answer, service_requests
from iam_policy import Deployment, Request, allowed, decide
from moto import mock_aws

from rekface.adapters import lambda_api
from rekface.spec.operations import OPERATIONS
from rekface.stores.dynamodb import create_table

REPO = Path(__file__).resolve().parents[2]
REGION, ACCOUNT = "us-east-1", "123456789012"
A, B = "identities/Paul_Bremer/12.jpg", "identities/Paul_Bremer/5.jpg"


class Context:
    function_name = "rekface"
    memory_limit_in_mb = 1769
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:rekface"
    aws_request_id = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def logical(template: dict[str, Any], prefix: str, kind: str) -> str:
    (found,) = [
        k for k, v in template["Resources"].items() if k.startswith(prefix) and v["Type"] == kind
    ]
    return found


def deployment_of(template: dict[str, Any]) -> Deployment:
    d = Deployment(template, region=REGION, account=ACCOUNT)
    for lid, res in template["Resources"].items():
        if res["Type"] == "AWS::S3Vectors::VectorBucket":  # named from the stack id
            d.names[lid] = d.resolve(res["Properties"]["VectorBucketName"])
    d.names[logical(template, "StorageTable", "AWS::DynamoDB::GlobalTable")] = "rekface-table"
    d.names[logical(template, "StorageIdempotencyTable", "AWS::DynamoDB::GlobalTable")] = (
        "rekface-idempotency"
    )
    d.names[logical(template, "StorageBucket", "AWS::S3::Bucket")] = "rekface-images"
    d.names[logical(template, "IngestDeadLetterQueue", "AWS::SQS::Queue")] = "rekface-dlq"
    return d


class Stack:
    """The deployment on moto, and a way to run each function as Lambda would."""

    def __init__(self, template: dict[str, Any], recorder: Recorder, monkeypatch) -> None:
        self.d = deployment_of(template)
        self.recorder = recorder
        self.monkeypatch = monkeypatch
        self.bucket = "rekface-images"
        self.handlers: dict[str, Any] = {}

    def setup(self, photo) -> None:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, "rekface-table")
        dynamodb.create_table(
            TableName="rekface-idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=self.bucket)
        for key, rel in (("photos/a.jpg", A), ("photos/b.jpg", B)):
            s3.put_object(Bucket=self.bucket, Key=key, Body=photo(rel))
        secrets = boto3.client("secretsmanager", region_name=REGION)
        arn = secrets.create_secret(Name="rekface-token", SecretString="t" * 64)["ARN"]
        self.d.refs[logical(self.d.template, "TokenSecret", "AWS::SecretsManager::Secret")] = arn
        for lid, res in self.d.template["Resources"].items():
            if res["Type"] == "AWS::S3Vectors::VectorBucket":
                self.vectors(self.d.name(lid))

    def vectors(self, bucket: str) -> None:
        """The vector bucket on moto; QueryVectors, which moto lacks, is decided like any call
        and then answered by the tests' exact double (tests/engines.py) over moto's vectors."""
        from engines import S3VectorsDouble

        raw = boto3.client("s3vectors", region_name=REGION)
        raw.create_vector_bucket(vectorBucketName=bucket)
        double = S3VectorsDouble(raw)

        def query(params: dict[str, Any]) -> dict[str, Any]:
            with self.recorder.suspended():
                out = double.query_vectors(**json.loads(params["body"]))
            return {**out, "ResponseMetadata": {"HTTPStatusCode": 200}}

        self.recorder.answers[("s3vectors", "QueryVectors")] = query

    def environment(self, function_id: str) -> dict[str, str]:
        env = self.d.function_environment(function_id)
        env.pop("REKFACE_MODELS_DIR", None)  # the models come from the repository here
        env["POWERTOOLS_TRACE_DISABLED"] = "true"  # X-Ray segments go to a daemon, not an API
        return env

    def run(self, function_id: str, event: dict[str, Any], statements=None) -> dict[str, Any]:
        """One cold invocation of ``function_id`` with its environment and its policy: a new
        sandbox, so the process-wide clients are created again (under the recorder)."""
        import rekface.adapters.s3 as s3_images

        self.monkeypatch.setattr(s3_images, "_client", None)
        for key in [k for k in os.environ if k.startswith("REKFACE_")]:
            self.monkeypatch.delenv(key)
        for key, value in self.environment(function_id).items():
            self.monkeypatch.setenv(key, value)
        folder = function_folder(function_id)
        lambda_api.reset()
        spec = importlib.util.spec_from_file_location(
            f"iam_{folder}", REPO / "functions" / folder / "app.py"
        )
        module = importlib.util.module_from_spec(spec)
        policy = self.d.role_statements(function_id) if statements is None else statements
        with self.recorder.as_function(function_id, policy):
            spec.loader.exec_module(module)
            out = module.handler(event, Context())
        lambda_api.reset()
        return out


def function_folder(function_id: str) -> str:
    names = {f"{op.name}Function": op.snake for op in OPERATIONS}
    names |= {"WireProtocolFunction": "wire_protocol", "S3EventsFunction": "s3_events"}
    return names[function_id]


def api_event(operation_snake: str, body: dict[str, Any]) -> dict[str, Any]:
    event = json.loads((REPO / "events" / f"{operation_snake}.json").read_text())
    event["body"] = json.dumps(body)
    return event


@pytest.fixture
def stack(synth, photo, engine, monkeypatch) -> Iterator[Stack]:
    """The default stack (IAM auth, exact search in each function)."""
    yield from _stack(synth.templates["Rekface"], photo, engine, monkeypatch)


@pytest.fixture
def vector_stack(synth, photo, engine, monkeypatch) -> Iterator[Stack]:
    """The other variant: S3 Vectors search, extra image buckets (my-photos, more-photos)."""
    yield from _stack(synth.templates["RekfaceApiKey"], photo, engine, monkeypatch)


def _stack(template, photo, engine, monkeypatch) -> Iterator[Stack]:
    import rekface.engine.faces as faces

    # The session's engine (models loaded once) stands in for each cold start's own.
    monkeypatch.setattr(faces, "FaceEngine", lambda *_a, **_k: engine)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    recorder = Recorder(Where(REGION, ACCOUNT))
    with mock_aws(), recorder.active():
        s = Stack(template, recorder, monkeypatch)
        s.setup(photo)
        yield s
    lambda_api.reset()


def call(stack: Stack, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    snake = next(op.snake for op in OPERATIONS if op.name == operation)
    out = stack.run(f"{operation}Function", api_event(snake, body))
    answer = json.loads(out["body"])
    assert out["statusCode"] == 200, (operation, answer, stack.recorder.denied())
    return answer


def s3_event(stack: Stack, key: str, etag: str) -> dict[str, Any]:
    event = json.loads((REPO / "events" / "s3_index.json").read_text())
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = stack.bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{stack.bucket}"
    record["s3"]["object"].update(key=key, eTag=etag.strip('"'))
    return event


def test_every_call_of_every_function_is_allowed_by_its_own_policy(stack, photo):
    run_every_function(stack, photo)
    seen = {d.request.action for d in stack.recorder.decisions}
    assert {"dynamodb:UpdateItem", "s3:ListBucket", "lambda:InvokeFunction"} <= seen


def test_with_s3_vectors_every_call_is_allowed_too(vector_stack, photo):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="my-photos")  # an extra images bucket of this variant
    s3.put_object(Bucket="my-photos", Key="team/a.jpg", Body=photo(A))
    run_every_function(vector_stack, photo)
    mine = {"S3Object": {"Bucket": "my-photos", "Name": "team/a.jpg"}}
    call(vector_stack, "DetectFaces", {"Image": mine})
    vectors = {
        d.request.action.split(":")[1]
        for d in vector_stack.recorder.decisions
        if d.request.action.startswith("s3vectors:")
    }
    assert {"CreateIndex", "GetIndex", "PutVectors", "QueryVectors", "DeleteIndex"} <= vectors
    assert vector_stack.recorder.denied() == []


def test_the_sample_events_bucket_is_not_readable_by_the_deployed_roles(stack, photo):
    """events/*.json name the bucket rekface-samples, which no deployed role may read (the
    images bucket is the stack's own, plus image_buckets): DetectFaces is refused by IAM."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="rekface-samples")
    s3.put_object(Bucket="rekface-samples", Key="photos/face-1.jpg", Body=photo(A))
    out = stack.run(
        "DetectFacesFunction", json.loads((REPO / "events/detect_faces.json").read_text())
    )
    assert out["statusCode"] == 400 and "InvalidS3Object" in out["body"]
    (denied,) = stack.recorder.denied()
    assert denied.request.resource == "arn:aws:s3:::rekface-samples/photos/face-1.jpg"


def run_every_function(stack: Stack, photo) -> None:
    """Each function once or more, with requests that make it do its real work."""
    img = {"S3Object": {"Bucket": stack.bucket, "Name": "photos/a.jpg"}}
    img_b = {"S3Object": {"Bucket": stack.bucket, "Name": "photos/b.jpg"}}
    fam = {"CollectionId": "family"}
    arn = f"arn:aws:rekognition:{REGION}:{ACCOUNT}:collection/family"

    call(stack, "CreateCollection", fam)
    call(stack, "CreateCollection", {"CollectionId": "other"})
    a = call(stack, "IndexFaces", {**fam, "Image": img, "ExternalImageId": "a"})
    b = call(stack, "IndexFaces", {**fam, "Image": img_b, "ExternalImageId": "b"})
    face_a = a["FaceRecords"][0]["Face"]["FaceId"]
    face_b = b["FaceRecords"][0]["Face"]["FaceId"]
    call(stack, "DescribeCollection", fam)
    page = call(stack, "ListCollections", {"MaxResults": 1})
    call(stack, "ListCollections", {"MaxResults": 1, "NextToken": page["NextToken"]})
    page = call(stack, "ListFaces", {**fam, "MaxResults": 1})
    call(stack, "ListFaces", {**fam, "MaxResults": 1, "NextToken": page["NextToken"]})
    call(stack, "DetectFaces", {"Image": img})
    call(stack, "CompareFaces", {"SourceImage": img, "TargetImage": img_b})
    call(stack, "SearchFaces", {**fam, "FaceId": face_a})
    call(stack, "SearchFacesByImage", {**fam, "Image": img_b})
    call(stack, "CreateUser", {**fam, "UserId": "paul", "ClientRequestToken": "t-1"})
    call(stack, "CreateUser", {**fam, "UserId": "gone"})
    page = call(stack, "ListUsers", {**fam, "MaxResults": 1})
    call(stack, "ListUsers", {**fam, "MaxResults": 1, "NextToken": page["NextToken"]})
    call(stack, "AssociateFaces", {**fam, "UserId": "paul", "FaceIds": [face_a]})
    call(stack, "SearchUsers", {**fam, "UserId": "paul"})
    call(stack, "SearchUsersByImage", {**fam, "Image": img_b})
    call(stack, "DisassociateFaces", {**fam, "UserId": "paul", "FaceIds": [face_a]})
    call(stack, "DeleteUser", {**fam, "UserId": "gone"})
    call(stack, "TagResource", {"ResourceArn": arn, "Tags": {"team": "ops"}})
    call(stack, "ListTagsForResource", {"ResourceArn": arn})
    call(stack, "UntagResource", {"ResourceArn": arn, "TagKeys": ["team"]})
    call(stack, "DeleteFaces", {**fam, "FaceIds": [face_b]})
    call(stack, "DeleteCollection", {"CollectionId": "other"})

    # POST /: the router invokes the operation's function (answered here without running it).
    ok = {"statusCode": 200, "headers": {}, "body": "{}", "isBase64Encoded": False}
    stack.recorder.answers[("lambda", "Invoke")] = invoke_answer(ok)
    routed = json.loads((REPO / "events" / "wire_protocol_detect_faces.json").read_text())
    assert stack.run("WireProtocolFunction", routed) == ok

    # The S3 flows: an image to index, a comparison job (its other image found by listing),
    # a search; each writes its result under results/.
    s3 = boto3.client("s3", region_name=REGION)
    for key, rel in (
        ("index/family/c.jpg", A),
        ("compare/job-1/source.jpg", A),
        ("compare/job-1/target.jpg", B),
        ("search/family/q.jpg", B),
    ):
        etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=photo(rel))["ETag"]
        if key != "compare/job-1/source.jpg":
            stack.run("S3EventsFunction", s3_event(stack, key, etag))
    results = s3.list_objects_v2(Bucket=stack.bucket, Prefix="results/").get("Contents", [])
    assert len(results) == 3, [r["Key"] for r in results]

    for function in sorted({d.function for d in stack.recorder.decisions}):
        calls = sorted({str(d.request) for d in stack.recorder.of(function)})
        print(f"{function}: {len(calls)} distinct calls, all allowed:", *calls, sep="\n  ")
    denied = stack.recorder.denied()
    assert denied == [], "\n".join(f"{d.function}: {d.request} ({d.request.call})" for d in denied)

    # What was checked, per service: every kind of grant the stack makes was exercised.
    seen = {d.request.action for d in stack.recorder.decisions}
    assert {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "s3:GetObject",
        "s3:PutObject",
        "secretsmanager:GetSecretValue",
        "lambda:InvokeFunction",
    } <= seen, sorted(seen)
    tables = {
        d.request.resource for d in stack.recorder.decisions if "dynamodb" in d.request.action
    }
    assert any(t.endswith("table/rekface-idempotency") for t in tables), tables
    for op in ("ListCollections", "ListFaces", "ListUsers"):
        assert any(
            d.request.action == "secretsmanager:GetSecretValue"
            for d in stack.recorder.of(f"{op}Function")
        ), op
    for op in OPERATIONS:
        if op.name not in ("ListCollections", "ListFaces", "ListUsers"):
            assert not any(
                "secretsmanager" in d.request.action
                for d in stack.recorder.of(f"{op.name}Function")
            )


def test_lambdas_own_calls_with_each_role_are_allowed(synth):
    """Logs, traces and the dead-letter queue: Lambda makes these calls with the function's
    role, so a missing grant loses logs or failed events silently."""
    d = deployment_of(synth.templates["Rekface"])
    functions = [k for k, v in d.template["Resources"].items() if k.endswith("Function")]
    functions = [
        f for f in functions if d.template["Resources"][f]["Type"] == "AWS::Lambda::Function"
    ]
    assert len(functions) == len(OPERATIONS) + 2
    dlq = 0
    for fid in functions:
        statements = d.role_statements(fid)
        for request in service_requests(d, fid):
            assert allowed(statements, request), f"{fid}: {request}"
            dlq += request.action == "sqs:SendMessage"
    assert dlq == 1  # the S3 flows' DLQ


# -- the checker can fail -------------------------------------------------------------------


def without(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """The statements with ``action`` taken out of every Allow."""
    out = []
    for st in copy.deepcopy(statements):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        kept = [a for a in actions if a != action]
        if kept:
            out.append({**st, "Action": kept})
    return out


def test_a_policy_missing_a_grant_fails_the_function(stack):
    """ListFaces with its policy minus GetSecretValue: the read of the token secret is denied
    (recorded, and answered as IAM answers), so the test above would fail."""
    call(stack, "CreateCollection", {"CollectionId": "family"})
    policy = without(stack.d.role_statements("ListFacesFunction"), "secretsmanager:GetSecretValue")
    out = stack.run(
        "ListFacesFunction", api_event("list_faces", {"CollectionId": "family"}), policy
    )
    assert out["statusCode"] == 500
    (denied,) = stack.recorder.denied()
    assert denied.function == "ListFacesFunction" and denied.decision == "ImplicitDeny"
    assert denied.request.action == "secretsmanager:GetSecretValue"


def test_a_policy_missing_a_table_grant_fails_the_function(stack):
    policy = without(stack.d.role_statements("CreateCollectionFunction"), "dynamodb:PutItem")
    policy = without(policy, "dynamodb:UpdateItem")
    out = stack.run(
        "CreateCollectionFunction", api_event("create_collection", {"CollectionId": "x"}), policy
    )
    assert out["statusCode"] >= 400
    assert {d.request.action for d in stack.recorder.denied()} & {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:TransactWriteItems",
    }


def test_decisions_follow_iam_rules():
    table = "arn:aws:dynamodb:us-east-1:1:table/t"
    allow = {"Effect": "Allow", "Action": ["dynamodb:Get*", "dynamodb:Query"], "Resource": table}
    get = Request("dynamodb:GetItem", table)
    assert decide([allow], get) == "Allow"
    assert decide([allow], Request("dynamodb:PutItem", table)) == "ImplicitDeny"
    # an index is another resource: a grant on the table does not cover it
    assert decide([allow], Request("dynamodb:Query", f"{table}/index/by-user")) == "ImplicitDeny"
    deny = {"Effect": "Deny", "Action": "dynamodb:*", "Resource": "*"}
    assert decide([allow, deny], get) == "ExplicitDeny"
    # actions are case-insensitive, resources are not
    assert decide([allow], Request("DynamoDB:getitem", table)) == "Allow"
    assert decide([allow], Request("dynamodb:GetItem", table.upper())) == "ImplicitDeny"


def test_s3_object_and_bucket_arns_and_the_listing_condition():
    objects = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/index/*"}
    listing = {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::b",
        "Condition": {"StringLike": {"s3:prefix": ["compare/*"]}},
    }
    policy = [objects, listing]
    assert allowed(policy, Request("s3:GetObject", "arn:aws:s3:::b/index/f/a.jpg"))
    assert not allowed(policy, Request("s3:GetObject", "arn:aws:s3:::b/results/x.json"))
    assert not allowed(policy, Request("s3:GetObject", "arn:aws:s3:::b"))  # the bucket itself
    assert not allowed(policy, Request("s3:GetObjectVersion", "arn:aws:s3:::b/index/a.jpg"))
    job = Request("s3:ListBucket", "arn:aws:s3:::b", (("s3:prefix", "compare/job-1/"),))
    assert allowed(policy, job)
    assert not allowed(policy, Request("s3:ListBucket", "arn:aws:s3:::b", (("s3:prefix", "x/"),)))
    assert not allowed(policy, Request("s3:ListBucket", "arn:aws:s3:::b"))  # no prefix given
    assert not allowed(policy, Request("s3:ListBucket", "arn:aws:s3:::b/compare/job-1/"))


def test_an_unknown_condition_operator_is_not_guessed():
    st = {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "*",
        "Condition": {"NumericLessThan": {"s3:max-keys": "10"}},
    }
    with pytest.raises(NotImplementedError):
        decide([st], Request("s3:ListBucket", "arn:aws:s3:::b", (("s3:max-keys", "5"),)))


def test_a_call_through_a_client_made_before_the_recorder_is_not_skipped():
    with mock_aws():
        early = boto3.client("s3", region_name=REGION)
        early.create_bucket(Bucket="early-bucket")
        recorder = Recorder(Where(REGION, ACCOUNT))
        everything = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
        with recorder.active(), recorder.as_function("F", everything):
            early.list_objects_v2(Bucket="early-bucket")
            boto3.client("s3", region_name=REGION).list_objects_v2(Bucket="early-bucket")
    assert [d.decision for d in recorder.decisions] == ["Unchecked", "Allow"]
    assert recorder.denied()[0].request.action == "s3:ListObjectsV2"
