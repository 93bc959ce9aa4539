"""The stack's settings, from CDK context (``cdk deploy -c auth=api_key -c arch=arm64 ...``),
validated once with clear messages. Defaults are the measured choices (README: Deploy to AWS)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

ARCHITECTURES = ("x86_64", "arm64")
# Lambda's default concurrency quota per Region (1,000) minus the 100 it keeps unreserved.
MAX_RESERVED_TOTAL = 900
AUTH_MODES = ("iam", "api_key")
SEARCH_MODES = ("memory", "s3vectors")


@dataclass(frozen=True)
class StackConfig:
    # Lambda runtime. python3.12 (Amazon Linux 2023, glibc 2.34): onnxruntime 1.32 and numpy 2.4
    # ship manylinux_2_28/2_27 wheels only, which python3.11's Amazon Linux 2 (glibc 2.26) can't
    # load. x86_64: the only CPU on which the layer could be built, run and timed here.
    python: str = "3.12"
    arch: str = "x86_64"
    # Where `make layers` put the layers; default layers/build/py<python>-<arch>.
    layers_dir: str = ""
    # Memory (MB). Lambda gives one full vCPU at 1769 MB; the image operations are single-request
    # CPU-bound model runs, so below that they slow down in proportion and cost the same.
    image_memory_mb: int = 1769
    data_memory_mb: int = 512  # collection/user/tag operations: numpy + the store, no models
    router_memory_mb: int = 256  # POST /: parses a header, invokes a function
    image_timeout_s: int = 29  # API Gateway's integration timeout is 29 s
    data_timeout_s: int = 29
    ingest_timeout_s: int = 120
    # 0: nothing reserved (every function draws on the account's pool). N: each image function
    # (the 5 image operations and the S3 flows: the ones that load models) gets N, so the stack
    # reserves reserved_total = 6 x N; the data functions and the router stay in the pool.
    reserved_concurrency: int = 0
    auth: str = "iam"  # "iam" (SigV4, default) or "api_key" (x-api-key header + usage plan)
    # X-Ray SDK subsegments in the POST / router (its Lambda client call). Off: Lambda still traces
    # the router's invocation, and its cold start skips importing the SDK.
    router_tracing: bool = False
    throttle_rate: float = 50.0  # API requests per second, steady state
    throttle_burst: int = 100
    deletion_protection: bool = True  # table deletion protection + retain table and bucket
    results_expire_days: int = 30  # lifecycle of results/ in the bucket
    log_retention_days: int = 30
    latency_alarm_ms: int = 5000  # API p99 latency alarm threshold
    alarm_email: str = ""  # subscribe this address to the alarm topic
    image_buckets: tuple[str, ...] = field(default_factory=tuple)  # more buckets for S3Object
    # Face search: "memory" (exact, in each function; collections up to ~1-2 M faces) or
    # "s3vectors" (a vector bucket, one index per collection: up to Rekognition's 20 M faces).
    search: str = "memory"
    vector_bucket_name: str = ""  # s3vectors: default rekface-<stack UUID>
    # The recognizer pack new collections get and CompareFaces uses: "1.0" (dlib, built in) or
    # the version of a pack put in the models layer (`make layers PACKS=dir`).
    face_model_version: str = "1.0"

    @property
    def reserved_total(self) -> int:
        """Concurrency the stack reserves in the account, all functions together."""
        return self.reserved_concurrency * reserved_functions()

    @property
    def layers_path(self) -> Path:
        if self.layers_dir:
            return Path(self.layers_dir).resolve()
        return REPO / "layers" / "build" / f"py{self.python}-{self.arch}"

    @classmethod
    def from_context(cls, get: Any) -> StackConfig:
        """``get(name)`` returns a context value or None (``node.try_get_context``)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = get(f.name)
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, f.type, raw)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}, got {self.auth!r}")
        for name in ("image_memory_mb", "data_memory_mb", "router_memory_mb"):
            value = getattr(self, name)
            if not 128 <= value <= 10240:
                raise ValueError(f"{name} must be 128..10240 (Lambda's range), got {value}")
        if self.search not in SEARCH_MODES:
            raise ValueError(
                f"search must be one of {SEARCH_MODES}, got {self.search!r} (pgvector: run "
                "rekface with REKFACE_SEARCH=pgvector next to your database; README)"
            )
        if not re.fullmatch(r"[0-9.]+", self.face_model_version):
            raise ValueError(
                f"face_model_version must match [0-9.]+, got {self.face_model_version!r}"
            )
        if self.reserved_concurrency < 0:
            raise ValueError("reserved_concurrency must be >= 0")
        if self.reserved_total > MAX_RESERVED_TOTAL:
            raise ValueError(
                f"reserved_concurrency={self.reserved_concurrency} reserves "
                f"{self.reserved_total} ({reserved_functions()} image functions x "
                f"{self.reserved_concurrency}); Lambda keeps 100 of an account's concurrency "
                f"unreserved, so at the default quota of 1,000 at most {MAX_RESERVED_TOTAL} can be "
                "reserved (and far less on new accounts: see `aws lambda get-account-settings`)"
            )
        if not 1 <= self.image_timeout_s <= 29 or not 1 <= self.data_timeout_s <= 29:
            raise ValueError("API function timeouts must be 1..29 s (API Gateway waits 29 s)")


def reserved_functions() -> int:
    """The functions reserved_concurrency applies to: the image operations and the S3 flows."""
    from rekface.spec.operations import OPERATIONS

    return sum(op.reads_images for op in OPERATIONS) + 1


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    kind = str(kind)
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "1", "yes"):
                return True
            if str(raw).lower() in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            items = raw if isinstance(raw, list) else str(raw).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
    except ValueError:
        raise ValueError(f"context {name}={raw!r} is not a valid {kind}") from None
    return str(raw)
