"""Amazon S3 Vectors as the search engine: one vector index per collection incarnation (128
dimensions, float32, cosine) in one vector bucket, key = FaceId, no metadata.

The service's limits (S3 User Guide, "Limitations and restrictions"; QueryVectors' topK since
2026-06) and what rekface does at each:

- QueryVectors: topK <= 10,000, answered in pages (``nextToken``). rekface asks for
  MaxFaces + 16 (<= 4,096 + 16), follows pages until it has them or the distances pass the
  threshold, and asks again with a larger topK (up to 10,000) only when vectors without records
  took the room. Search is approximate (the service's own recall; not measurable here).
- PutVectors / DeleteVectors: <= 500 vectors per call, <= 1,000 calls/s and <= 2,500 vectors/s
  per index (inserts and deletes together). IndexFaces writes <= 100 vectors in one call;
  ``rekface vectors move`` writes batches of 500 and paces itself under 2,500 vectors/s. Beyond
  the rate the service answers 429 TooManyRequestsException: the client retries with backoff
  (botocore's adaptive mode, which also slows the sender down), so a collection takes at most
  ~2,500 new faces per second whatever the API's concurrency.
- GetVectors: <= 100 keys per call (the read-back after IndexFaces).
- 10,000 indexes per vector bucket: at most 10,000 collections per deployment (use more buckets
  beyond that); 2 billion vectors per index, far above Rekognition's 20 million faces.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from rekface.search.indexed import Candidates, IndexedSearch, Vector
from rekface.stores.base import Store
from rekface.stores.records import CollectionRecord

DIMENSION = 128
MAX_TOP_K = 10_000
PUT_BATCH = 500
GET_BATCH = 100
DEFAULT_PREFIX = "rekface-"
WRITE_RATE = 2_500  # vectors per second per index (inserts + deletes)


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


class S3VectorsSearch(IndexedSearch):
    max_top_k = MAX_TOP_K

    def __init__(
        self, store: Store, client: Any, bucket: str, prefix: str = DEFAULT_PREFIX
    ) -> None:
        super().__init__(store)
        if len(prefix) + 36 > 63:
            raise ValueError("the index prefix leaves no room for the incarnation (63 chars)")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self._known: set[str] = set()  # indexes this process saw exist
        self.bulk_rate = WriteRate(WRITE_RATE)

    def index_name(self, incarnation: str) -> str:
        return f"{self.prefix}{incarnation}"

    def _args(self, incarnation: str) -> dict[str, str]:
        return {"vectorBucketName": self.bucket, "indexName": self.index_name(incarnation)}

    # -----------------------------------------------------------------------------------------

    def _ensure_index(self, incarnation: str) -> None:
        name = self.index_name(incarnation)
        try:
            self.client.create_index(
                vectorBucketName=self.bucket,
                indexName=name,
                dataType="float32",
                dimension=DIMENSION,
                distanceMetric="cosine",
            )
        except ClientError as exc:
            if _code(exc) != "ConflictException":  # created by a concurrent call: fine
                raise
        self._known.add(name)

    def _put(self, collection: CollectionRecord, vectors: list[Vector]) -> None:
        inc = collection.incarnation
        if self.index_name(inc) not in self._known and not self._index_exists(inc):
            self._ensure_index(inc)
        for i in range(0, len(vectors), PUT_BATCH):
            batch = [
                {"key": v.face_id, "data": {"float32": v.embedding.astype(np.float32).tolist()}}
                for v in vectors[i : i + PUT_BATCH]
            ]
            try:
                self.client.put_vectors(**self._args(inc), vectors=batch)
            except ClientError as exc:
                if _code(exc) != "NotFoundException":
                    raise
                # Dropped since this process saw it (DeleteCollection elsewhere). The store's
                # write that follows fails on the retired collection; the index left behind is
                # an orphan that `rekface vectors gc` drops.
                self._known.discard(self.index_name(inc))
                self._ensure_index(inc)
                self.client.put_vectors(**self._args(inc), vectors=batch)

    def put_faces(self, collection: CollectionRecord, faces) -> None:  # type: ignore[override]
        """Bulk load, paced under the index's write rate (the move command's batches)."""
        self.bulk_rate.wait(len(faces))
        super().put_faces(collection, faces)

    def _index_exists(self, incarnation: str) -> bool:
        try:
            self.client.get_index(**self._args(incarnation))
        except ClientError as exc:
            if _code(exc) == "NotFoundException":
                return False
            raise
        self._known.add(self.index_name(incarnation))
        return True

    def _present(self, collection: CollectionRecord, face_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(face_ids), GET_BATCH):
            try:
                resp = self.client.get_vectors(
                    **self._args(collection.incarnation), keys=face_ids[i : i + GET_BATCH]
                )
            except ClientError as exc:
                if _code(exc) == "NotFoundException":
                    return set()
                raise
            found.update(v["key"] for v in resp.get("vectors", []))
        return found

    def _delete(self, collection: CollectionRecord, face_ids: list[str]) -> None:
        for i in range(0, len(face_ids), PUT_BATCH):
            try:
                self.client.delete_vectors(
                    **self._args(collection.incarnation), keys=face_ids[i : i + PUT_BATCH]
                )
            except ClientError as exc:
                if _code(exc) == "NotFoundException":
                    return
                raise

    def _query(
        self, collection: CollectionRecord, query: np.ndarray, k: int, min_cosine: float
    ) -> Candidates:
        args: dict[str, Any] = {
            **self._args(collection.incarnation),
            "topK": min(k, MAX_TOP_K),
            "queryVector": {"float32": query.astype(np.float32).tolist()},
            "returnDistance": True,
        }
        ids: list[str] = []
        cos: list[float] = []
        while True:
            try:
                resp = self.client.query_vectors(**args)
            except ClientError as exc:
                if _code(exc) == "NotFoundException":  # no face was ever indexed
                    return Candidates([], [], True)
                raise
            for v in resp.get("vectors", []):
                c = 1.0 - float(v["distance"])  # cosine distance = 1 - cosine
                if c < min_cosine:  # ranked by distance: the rest are further still
                    return Candidates(ids, cos, True)
                ids.append(v["key"])
                cos.append(c)
            token = resp.get("nextToken")
            if not token or len(ids) >= k:
                return Candidates(ids, cos, len(ids) < k)
            args["nextToken"] = token

    def _drop(self, incarnation: str) -> None:
        self._known.discard(self.index_name(incarnation))
        try:
            self.client.delete_index(**self._args(incarnation))
        except ClientError as exc:
            if _code(exc) != "NotFoundException":
                raise

    def _incarnations(self) -> list[str]:
        out: list[str] = []
        args: dict[str, Any] = {"vectorBucketName": self.bucket, "prefix": self.prefix}
        while True:
            resp = self.client.list_indexes(**args)
            names = [i["indexName"] for i in resp.get("indexes", [])]
            out += [n[len(self.prefix) :] for n in names if n.startswith(self.prefix)]
            if not resp.get("nextToken"):
                return out
            args["nextToken"] = resp["nextToken"]


class WriteRate:
    """Paces bulk writes under a vectors-per-second budget (S3 Vectors: 2,500 per index)."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._start = time.monotonic()
        self._sent = 0

    def wait(self, n: int) -> None:
        self._sent += n
        due = self._start + self._sent / self.per_second
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
