"""Every AWS call a function makes, as IAM sees it (action, resource ARN, condition keys),
recorded through botocore's event hooks and decided against that function's policy at the call.

Hooks are attached to every client botocore creates while the recorder is active (clients are
created inside the code under test and inside libraries with sessions of their own, such as
Powertools' idempotency layer, so hooks on one session would miss some). A denied call raises
``AccessDeniedException`` as IAM would, and is kept for the test to report.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlparse

import botocore.client
from botocore.exceptions import ClientError
from iam_policy import Request, decide

# -- API call -> IAM requests -----------------------------------------------------------------

DYNAMODB_TRANSACT = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# S3 Vectors: every data-plane call names an index; these name the bucket only.
S3VECTORS_BUCKET_LEVEL = {"ListIndexes", "GetVectorBucket", "CreateVectorBucket"}


@dataclass(frozen=True)
class Where:
    region: str
    account: str
    partition: str = "aws"


def _table_arn(w: Where, table: str, index: str | None = None) -> str:
    if table.startswith("arn:"):
        base = table
    else:
        base = f"arn:{w.partition}:dynamodb:{w.region}:{w.account}:table/{table}"
    return f"{base}/index/{index}" if index else base


def dynamodb_requests(w: Where, op: str, params: Mapping[str, Any]) -> list[Request]:
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [
            Request(f"dynamodb:{op}", _table_arn(w, t), call=op) for t in params["RequestItems"]
        ]
    if op == "TransactWriteItems":
        return [
            Request(DYNAMODB_TRANSACT[kind], _table_arn(w, body["TableName"]), call=op)
            for item in params["TransactItems"]
            for kind, body in item.items()
        ]
    if op == "TransactGetItems":
        return [
            Request("dynamodb:GetItem", _table_arn(w, item["Get"]["TableName"]), call=op)
            for item in params["TransactItems"]
        ]
    table = params["TableName"]
    return [Request(f"dynamodb:{op}", _table_arn(w, table, params.get("IndexName")), call=op)]


def s3_requests(w: Where, op: str, params: Mapping[str, Any]) -> list[Request]:
    bucket = params["Bucket"]
    obj = f"arn:{w.partition}:s3:::{bucket}/{params.get('Key', '')}"
    if op in ("GetObject", "HeadObject"):
        action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
        return [Request(action, obj, call=op)]
    if op == "PutObject":
        return [Request("s3:PutObject", obj, call=op)]
    if op == "DeleteObject":
        return [Request("s3:DeleteObject", obj, call=op)]
    if op in ("ListObjectsV2", "ListObjects"):
        context = tuple(
            (key, str(params[param]))
            for key, param in (
                ("s3:prefix", "Prefix"),
                ("s3:delimiter", "Delimiter"),
                ("s3:max-keys", "MaxKeys"),
            )
            if param in params
        )
        return [Request("s3:ListBucket", f"arn:{w.partition}:s3:::{bucket}", context, op)]
    raise NotImplementedError(f"the IAM request of s3 {op}")


def s3vectors_requests(w: Where, op: str, params: Mapping[str, Any]) -> list[Request]:
    if params.get("indexArn"):
        return [Request(f"s3vectors:{op}", params["indexArn"], call=op)]
    bucket = params.get("vectorBucketArn") or (
        f"arn:{w.partition}:s3vectors:{w.region}:{w.account}:bucket/{params['vectorBucketName']}"
    )
    if op in S3VECTORS_BUCKET_LEVEL:
        return [Request(f"s3vectors:{op}", bucket, call=op)]
    return [Request(f"s3vectors:{op}", f"{bucket}/index/{params['indexName']}", call=op)]


def lambda_requests(w: Where, op: str, params: Mapping[str, Any]) -> list[Request]:
    if op != "Invoke":
        raise NotImplementedError(f"the IAM request of lambda {op}")
    name = params["FunctionName"]
    arn = (
        name
        if name.startswith("arn:")
        else (f"arn:{w.partition}:lambda:{w.region}:{w.account}:function:{name}")
    )
    if params.get("Qualifier"):
        arn += f":{params['Qualifier']}"
    return [Request("lambda:InvokeFunction", arn, call=op)]


def secretsmanager_requests(w: Where, op: str, params: Mapping[str, Any]) -> list[Request]:
    secret = params["SecretId"]
    if not secret.startswith("arn:"):  # by name: IAM sees the ARN, whose suffix is random
        secret = f"arn:{w.partition}:secretsmanager:{w.region}:{w.account}:secret:{secret}-??????"
    return [Request(f"secretsmanager:{op}", secret, call=op)]


def sqs_requests(w: Where, op: str, params: Mapping[str, Any]) -> list[Request]:
    path = urlparse(params["QueueUrl"]).path.strip("/").split("/")
    account, name = path[-2], path[-1]
    return [Request(f"sqs:{op}", f"arn:{w.partition}:sqs:{w.region}:{account}:{name}", call=op)]


MAPPERS: dict[str, Callable[[Where, str, Mapping[str, Any]], list[Request]]] = {
    "dynamodb": dynamodb_requests,
    "s3": s3_requests,
    "s3vectors": s3vectors_requests,
    "lambda": lambda_requests,
    "secretsmanager": secretsmanager_requests,
    "sqs": sqs_requests,
}


def requests_for(w: Where, service: str, op: str, params: Mapping[str, Any]) -> list[Request]:
    if service not in MAPPERS:
        raise NotImplementedError(f"no IAM mapping for the {service} service ({op})")
    return MAPPERS[service](w, op, params)


# -- the Lambda service's own calls with a function's role ------------------------------------


def service_requests(deployment: Any, function_id: str) -> list[Request]:
    """What Lambda itself does with the execution role: write the function's logs, send its
    traces (Tracing: Active) and, for an asynchronous event that failed every retry, send it to
    the dead-letter queue."""
    props = deployment.template["Resources"][function_id]["Properties"]
    group = deployment.resolve(props["LoggingConfig"]["LogGroup"])
    stream = f"arn:aws:logs:{deployment.region}:{deployment.account}:log-group:{group}"
    stream += ":log-stream:2026/12/06/[$LATEST]0123456789abcdef"
    out = [
        Request("logs:CreateLogStream", stream, call="Lambda service"),
        Request("logs:PutLogEvents", stream, call="Lambda service"),
    ]
    if props.get("TracingConfig", {}).get("Mode") == "Active":
        out += [
            Request("xray:PutTraceSegments", "*", call="Lambda service"),
            Request("xray:PutTelemetryRecords", "*", call="Lambda service"),
        ]
    if "DeadLetterConfig" in props:
        queue = deployment.resolve(props["DeadLetterConfig"]["TargetArn"])
        out.append(Request("sqs:SendMessage", queue, call="Lambda service (DLQ)"))
    return out


# -- the recorder -----------------------------------------------------------------------------


@dataclass
class Decision:
    function: str
    request: Request
    decision: str


@dataclass
class Recorder:
    """Decides each call of the active function (``as_function``) against its statements."""

    where: Where
    decisions: list[Decision] = field(default_factory=list)
    function: str = ""
    statements: Sequence[Mapping[str, Any]] = ()
    # service -> operation -> canned answer: calls that cannot run here (Lambda Invoke) are
    # decided, then answered without a request.
    answers: dict[tuple[str, str], Callable[[Mapping[str, Any]], dict[str, Any]]] = field(
        default_factory=dict
    )

    @contextlib.contextmanager
    def as_function(self, function: str, statements: Sequence[Mapping[str, Any]]) -> Iterator[None]:
        self.function, self.statements = function, statements
        try:
            yield
        finally:
            self.function, self.statements = "", ()

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Calls the test harness makes on a function's behalf (a service moto lacks)."""
        saved = self.function, self.statements
        self.function, self.statements = "", ()
        try:
            yield
        finally:
            self.function, self.statements = saved

    def denied(self) -> list[Decision]:
        return [d for d in self.decisions if d.decision != "Allow"]

    def of(self, function: str) -> list[Decision]:
        return [d for d in self.decisions if d.function == function]

    def check(self, requests: Sequence[Request], operation: str) -> None:
        for request in requests:
            decision = decide(self.statements, request)
            self.decisions.append(Decision(self.function, request, decision))
            if decision != "Allow":
                raise ClientError(
                    {
                        "Error": {
                            "Code": "AccessDeniedException",
                            "Message": f"{self.function} may not {request} ({decision})",
                        },
                        "ResponseMetadata": {"HTTPStatusCode": 403},
                    },
                    operation,
                )

    def _before_parameter_build(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.function:
            return  # test setup (creating tables, buckets, secrets): not a function's call
        service = model.service_model.endpoint_prefix
        self.check(requests_for(self.where, service, model.name, params), model.name)

    def _before_call(self, model: Any, params: Any, **_: Any) -> Any:
        service = model.service_model.endpoint_prefix
        answer = self.answers.get((service, model.name))
        if answer is None or not self.function:
            return None
        parsed = answer(params)

        class Http:
            status_code = 200
            headers: ClassVar[dict[str, str]] = {}

        return Http(), parsed

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self._before_parameter_build)
        client.meta.events.register("before-call", self._before_call)
        client._iam_recorder = self

    @contextlib.contextmanager
    def active(self) -> Iterator[Recorder]:
        """Attach the hooks to every client created meanwhile. A call made by a function
        through a client created before (a process-wide client cached by an earlier test) is
        recorded as "Unchecked", which fails the test like a denial: nothing is skipped."""
        create = botocore.client.ClientCreator.create_client
        make_call = botocore.client.BaseClient._make_api_call
        recorder = self

        def create_client(creator: Any, *args: Any, **kwargs: Any) -> Any:
            client = create(creator, *args, **kwargs)
            recorder.attach(client)
            return client

        def make_api_call(client: Any, operation: str, params: Any) -> Any:
            if recorder.function and getattr(client, "_iam_recorder", None) is not recorder:
                service = client.meta.service_model.endpoint_prefix
                request = Request(f"{service}:{operation}", "?", call="client without hooks")
                recorder.decisions.append(Decision(recorder.function, request, "Unchecked"))
            return make_call(client, operation, params)

        botocore.client.ClientCreator.create_client = create_client  # type: ignore[method-assign]
        botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        try:
            yield self
        finally:
            botocore.client.ClientCreator.create_client = create  # type: ignore[method-assign]
            botocore.client.BaseClient._make_api_call = make_call  # type: ignore[method-assign]


def invoke_answer(proxy_response: dict[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A Lambda Invoke answered with ``proxy_response`` as the function's payload."""
    from botocore.response import StreamingBody

    def answer(_params: Mapping[str, Any]) -> dict[str, Any]:
        data = json.dumps(proxy_response).encode()
        return {
            "StatusCode": 200,
            "Payload": StreamingBody(io.BytesIO(data), len(data)),
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    return answer
