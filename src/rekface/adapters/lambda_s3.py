"""S3 ObjectCreated events -> operations, with the Rekognition-shaped result written back to S3.

Key layout (the bucket's notifications are filtered on these three prefixes):

- ``index/<CollectionId>/<ExternalImageId>.<ext>``  -> IndexFaces into that collection
- ``compare/<job>/source.<ext>`` + ``compare/<job>/target.<ext>`` -> CompareFaces, run by the event
  of whichever of the two arrives second (the first finds the other missing and waits)
- ``search/<CollectionId>/<name>.<ext>``            -> SearchFacesByImage

The answer goes to ``results/<key>.json`` (``results/compare/<job>.json`` for a comparison): the
operation's exact JSON, or ``{"__type", "Message"}`` for a Rekognition error, with the status, the
source key (percent-encoded: S3 metadata is ASCII) and the source ETag in the object's metadata.

Result keys never collide and always fit S3 (``result_key``): a key that does not follow the layout
(``compare/job1``, ``index/../x.jpg``) is answered under ``results/invalid/<key>.json``, apart from
every real job's result, and a result key that would exceed S3's 1,024 bytes, or hold a ``.`` or
``..`` segment, becomes ``results/hashed/<sha256 of what it would have been>.json``.

Retries: a client error (bad image, unknown collection, no face, ...) is a final answer: it is
written as the result and the event succeeds, so Lambda never retries it. Only server-side faults
(5xx errors, AWS errors, crashes) make the invocation fail; Lambda's async retries (2) then the
dead-letter queue take over. IndexFaces, the only flow with a side effect, runs at most once per
(bucket, key, ETag) through an idempotency record (Powertools idempotency on DynamoDB): a
redelivered event or a retry after a later failure writes the recorded answer again instead of
indexing the faces twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote_plus

from rekface import operations
from rekface.adapters import wire
from rekface.errors import InvalidParameterException, RekognitionError
from rekface.operations.context import Context

RESULTS_PREFIX = "results/"
FLOW_PREFIXES = ("index/", "compare/", "search/")
COMPARE_ROLES = ("source", "target")
# Results of keys off the layout, and results whose natural key S3 would not take: neither is a
# flow prefix, so no job's result can land there.
INVALID = "invalid/"
HASHED = "hashed/"
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes
MAX_METADATA_VALUE = 1024  # of our source-key value; S3 allows 2 KB of user metadata in all


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    etag: str

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ObjectCreated:
        s3 = record["s3"]
        # Keys in S3 notifications are URL-encoded, with spaces as '+'.
        key = unquote_plus(s3["object"]["key"])
        return cls(s3["bucket"]["name"], key, str(s3["object"].get("eTag", "")).strip('"'))


@dataclass(frozen=True)
class Job:
    """One operation to run for an event, and where its answer goes."""

    operation: str
    request: dict[str, Any]
    result_key: str
    source: ObjectCreated
    idempotent: bool = False  # has a side effect: run at most once per (bucket, key, ETag)

    @property
    def idempotency_key(self) -> str:
        return f"{self.source.bucket}/{self.source.key}#{self.source.etag}"


@dataclass(frozen=True)
class Result:
    status: int
    body: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body}


class Guard(Protocol):
    """Runs ``compute`` at most once per ``job.idempotency_key``; returns its (recorded) result."""

    def run(self, job: Job, compute: Callable[[], Result]) -> Result: ...

    def bind(self, lambda_context: Any) -> None: ...


class NoGuard:
    def run(self, job: Job, compute: Callable[[], Result]) -> Result:
        return compute()

    def bind(self, lambda_context: Any) -> None:
        pass


class IdempotencyGuard:
    """Powertools idempotency on DynamoDB: a conditional put claims the key before the operation
    runs (a concurrent duplicate fails and is retried later), the answer is stored when it ends
    (a redelivery gets it back without running again), and a crash releases the claim."""

    # How long a finished record answers redeliveries. S3 redelivers within minutes to hours; a
    # week also covers re-uploading the same bytes to the same key (same ETag: not indexed again).
    EXPIRES_AFTER_SECONDS = 7 * 24 * 3600

    def __init__(self, persistence: Any) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            IdempotencyConfig,
            idempotent_function,
        )

        self.config = IdempotencyConfig(
            event_key_jmespath="key", expires_after_seconds=self.EXPIRES_AFTER_SECONDS
        )
        self._compute: Callable[[], Result] | None = None

        @idempotent_function(
            data_keyword_argument="job", config=self.config, persistence_store=persistence
        )
        def guarded(job: dict[str, str]) -> dict[str, Any]:
            if self._compute is None:
                raise RuntimeError("IdempotencyGuard.run sets the computation first")
            return self._compute().to_dict()

        self._guarded = guarded

    def bind(self, lambda_context: Any) -> None:
        # Lets a claim expire when the invocation times out, so a retry is not blocked forever.
        self.config.register_lambda_context(lambda_context)

    def run(self, job: Job, compute: Callable[[], Result]) -> Result:
        self._compute = compute
        try:
            out = self._guarded(job={"key": job.idempotency_key, "operation": job.operation})
        finally:
            self._compute = None
        return Result(int(out["status"]), out["body"])


class LayoutError(Exception):
    """A key under a flow prefix that does not follow its layout: answered with an error result."""


def _s3_image(obj: ObjectCreated, key: str | None = None) -> dict[str, Any]:
    return {"S3Object": {"Bucket": obj.bucket, "Name": key or obj.key}}


def _stem(name: str) -> str:
    """``alice.jpg`` -> ``alice`` (only the last extension goes)."""
    stem, dot, _ext = name.rpartition(".")
    return stem if dot and stem else name


def _parts(key: str, prefix: str, layout: str) -> tuple[str, str]:
    parts = key[len(prefix) :].split("/")
    # "." and ".." are refused: a tool that normalises paths would read index/../x.jpg as x.jpg.
    if len(parts) != 2 or not all(parts) or {".", ".."} & set(parts):
        raise LayoutError(f"S3 key {_shown(key)} does not follow the layout {layout}")
    return parts[0], parts[1]


def _shown(key: str) -> str:
    """A key as error messages quote it, at most ~200 characters."""
    return repr(key) if len(key) <= 200 else repr(key[:100] + "..." + key[-100:])


def result_key(name: str) -> str:
    """``results/<name>.json``, or ``results/hashed/<sha256(name)>.json`` when that would be over
    S3's key limit or hold a "." or ".." segment (which some S3 tools resolve as paths).

    ``name`` is the key of the uploaded object (index/, search/), ``compare/<job>`` for a
    comparison, ``invalid/<key>`` for a key off the layout: distinct names, distinct results."""
    key = f"{RESULTS_PREFIX}{name}.json"
    segments = set(key.split("/"))
    if len(key.encode("utf-8")) <= MAX_KEY_BYTES and not {".", ".."} & segments:
        return key
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return f"{RESULTS_PREFIX}{HASHED}{digest}.json"


class S3Flows:
    """Plans and runs the job of each event; S3 access through an injected boto3 client."""

    def __init__(self, ctx: Context, s3: Any, guard: Guard | None = None) -> None:
        self.ctx = ctx
        self.s3 = s3
        self.guard: Guard = guard or NoGuard()  # for jobs with side effects (IndexFaces)

    # -- planning ---------------------------------------------------------------------------

    def plan(self, obj: ObjectCreated) -> Job | None:
        """The job for a new object, or None when there is nothing to do (yet)."""
        key = obj.key
        if key.startswith("index/"):
            collection, name = _parts(key, "index/", "index/<CollectionId>/<ExternalImageId>.jpg")
            request = {
                "CollectionId": collection,
                "Image": _s3_image(obj),
                "ExternalImageId": _stem(name),
            }
            return Job("IndexFaces", request, result_key(key), obj, idempotent=True)
        if key.startswith("search/"):
            collection, _name = _parts(key, "search/", "search/<CollectionId>/<name>.jpg")
            request = {"CollectionId": collection, "Image": _s3_image(obj)}
            return Job("SearchFacesByImage", request, result_key(key), obj)
        if key.startswith("compare/"):
            return self._plan_compare(obj)
        return None  # not ours (the notifications should not send these)

    def _plan_compare(self, obj: ObjectCreated) -> Job | None:
        job_id, name = _parts(obj.key, "compare/", "compare/<job>/source.jpg and target.jpg")
        role = _stem(name)
        if role not in COMPARE_ROLES:
            raise LayoutError(
                f"S3 key {_shown(obj.key)} does not follow the layout compare/<job>/source.jpg "
                "and target.jpg (a comparison job holds exactly these two names)"
            )
        other = self._find(
            obj.bucket, f"compare/{job_id}/", "target" if role == "source" else "source"
        )
        if other is None:
            return None  # the other image's event will run the comparison
        source, target = (obj.key, other) if role == "source" else (other, obj.key)
        request = {
            "SourceImage": _s3_image(obj, source),
            "TargetImage": _s3_image(obj, target),
        }
        return Job("CompareFaces", request, result_key(f"compare/{job_id}"), obj)

    def _find(self, bucket: str, prefix: str, role: str) -> str | None:
        listing = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        for item in listing.get("Contents", []):
            if _stem(item["Key"][len(prefix) :]) == role:
                return item["Key"]
        return None

    # -- running ----------------------------------------------------------------------------

    def handle(self, obj: ObjectCreated) -> Job | None:
        """Run the job of one event and write its result. Raises only for server-side faults."""
        try:
            job = self.plan(obj)
        except LayoutError as exc:
            err = InvalidParameterException(str(exc))
            self.write(obj, result_key(INVALID + obj.key), "", Result(err.status, err.to_body()))
            return None
        if job is None:
            return None
        if job.idempotent:
            result = self.guard.run(job, lambda: self.execute(job))
        else:
            result = self.execute(job)
        self.write(obj, job.result_key, job.operation, result)
        return job

    def execute(self, job: Job) -> Result:
        try:
            response = operations.run(self.ctx, job.operation, job.request)
        except RekognitionError as err:
            if err.status >= 500:
                raise  # throttling, internal faults: let Lambda retry
            return Result(err.status, err.to_body())
        # Through the wire codec, so the result is byte for byte what the API would answer.
        return Result(200, json.loads(wire.encode_response(response)))

    def write(self, obj: ObjectCreated, key: str, operation: str, result: Result) -> None:
        self.s3.put_object(
            Bucket=obj.bucket,
            Key=key,
            Body=json.dumps(result.body, separators=(",", ":")).encode("utf-8"),
            ContentType="application/json",
            Metadata=_metadata(obj, operation, result),
        )


def _metadata(obj: ObjectCreated, operation: str, result: Result) -> dict[str, str]:
    """S3 user metadata is ASCII and 2 KB in all: the source key goes percent-encoded (UTF-8), and
    only when it is short enough; a long key's result is found by its hash (result_key)."""
    meta = {"operation": operation or "none", "status": str(result.status)}
    source = quote(obj.key, safe="/")
    if len(source) <= MAX_METADATA_VALUE:
        meta["source-key"] = source
    meta["source-etag"] = quote(obj.etag[:100], safe="")
    return meta


def records(event: dict[str, Any]) -> list[ObjectCreated]:
    out = []
    for record in event.get("Records") or []:
        if str(record.get("eventName", "")).startswith("ObjectCreated") and "s3" in record:
            out.append(ObjectCreated.from_record(record))
    return out


def process(flows: S3Flows, event: dict[str, Any], log: Any = None) -> list[Job]:
    """Every record of the event; a server-side fault on one does not stop the others, and the
    invocation then fails as a whole (the retry finds the finished ones done: results are
    overwritten with the same answer, IndexFaces is not run again)."""
    done: list[Job] = []
    failures: list[BaseException] = []
    for obj in records(event):
        if obj.key.startswith(RESULTS_PREFIX) or not obj.key.startswith(FLOW_PREFIXES):
            continue  # our own results, or keys outside the layout: never loop on them
        try:
            job = flows.handle(obj)
        except Exception as exc:
            if log is not None:
                log.exception("S3 flow failed", extra={"bucket": obj.bucket, "key": obj.key})
            failures.append(exc)
            continue
        if job is not None:
            done.append(job)
    if failures:
        raise failures[0]
    return done


def make_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from aws_lambda_powertools.metrics import MetricUnit

    from rekface.adapters.bootstrap import build_s3_flows
    from rekface.adapters.lambda_events import powertools

    logger, tracer, metrics = powertools()
    state: dict[str, S3Flows] = {}

    @logger.inject_lambda_context(log_event=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if "flows" not in state:  # built on the first invocation, reused while warm
            state["flows"] = build_s3_flows()
        flows = state["flows"]
        flows.guard.bind(context)
        jobs = process(flows, event, logger)
        metrics.add_metric(name="S3Jobs", unit=MetricUnit.Count, value=len(jobs))
        return {"processed": [{"operation": j.operation, "result": j.result_key} for j in jobs]}

    return handler
