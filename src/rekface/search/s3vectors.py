"""Amazon S3 Vectors as the search engine: one vector index per collection incarnation (float32,
cosine, the dimensions of the collection's recognizer pack: 128 for the built-in 1.0) in one vector
bucket, key = FaceId (metadata: the face's UserId, if any), and one index of the users' centroids
per collection (``<prefix><incarnation>-u``, key = UserId, metadata: the user's face count).
Indexes are created on the first write.

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
- 10,000 indexes per vector bucket: at most 5,000 collections per deployment (two indexes
  each; deploy more buckets beyond that); 2 billion vectors per index, far above Rekognition's
  20 million faces.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from rekface.search.indexed import Candidates, IndexedSearch, Vector
from rekface.stores.base import Store
from rekface.stores.records import CollectionRecord, FaceRecord

DIMENSION = 128  # the built-in pack 1.0's; an index takes the dims of its first vectors
MAX_TOP_K = 10_000
PUT_BATCH = 500
GET_BATCH = 100
DEFAULT_PREFIX = "rekface-"
USERS_SUFFIX = "-u"  # the users' index of a collection: <prefix><incarnation>-u
WRITE_RATE = 2_500  # vectors per second per index (inserts + deletes)


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


class S3VectorsSearch(IndexedSearch):
    max_top_k = MAX_TOP_K

    def __init__(
        self, store: Store, client: Any, bucket: str, prefix: str = DEFAULT_PREFIX
    ) -> None:
        super().__init__(store)
        if len(prefix) + 36 + len(USERS_SUFFIX) > 63:
            raise ValueError("the index prefix leaves no room for the incarnation (63 chars)")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self._known: set[str] = set()  # indexes this process saw exist
        self.bulk_rate = WriteRate(WRITE_RATE * 0.95)  # a margin under the index's rate

    def index_name(self, incarnation: str) -> str:
        return f"{self.prefix}{incarnation}"

    def users_index_name(self, incarnation: str) -> str:
        return f"{self.prefix}{incarnation}{USERS_SUFFIX}"

    def _args(self, name: str) -> dict[str, str]:
        return {"vectorBucketName": self.bucket, "indexName": name}

    # -----------------------------------------------------------------------------------------
    # Index-level helpers

    def _ensure_index(self, name: str, dims: int) -> None:
        if name in self._known:
            return
        try:
            self.client.get_index(**self._args(name))
        except ClientError as exc:
            if _code(exc) != "NotFoundException":
                raise
            self._create_index(name, dims)
        self._known.add(name)

    def _create_index(self, name: str, dims: int) -> None:
        """An index is created by the first write into it, so it takes the dimension of the
        collection's recognizer pack (every vector of a collection has it)."""
        try:
            self.client.create_index(
                **self._args(name), dataType="float32", dimension=dims, distanceMetric="cosine"
            )
        except ClientError as exc:
            if _code(exc) != "ConflictException":  # created by a concurrent call: fine
                raise
        self._known.add(name)

    def _write(self, name: str, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        dims = len(items[0]["data"]["float32"])
        self._ensure_index(name, dims)
        for i in range(0, len(items), PUT_BATCH):
            batch = items[i : i + PUT_BATCH]
            try:
                self.client.put_vectors(**self._args(name), vectors=batch)
            except ClientError as exc:
                if _code(exc) != "NotFoundException":
                    raise
                # Dropped since this process saw it (DeleteCollection elsewhere). The store's
                # write that follows fails on the retired collection; the index left behind is
                # an orphan that `rekface vectors gc` drops.
                self._known.discard(name)
                self._create_index(name, dims)
                self.client.put_vectors(**self._args(name), vectors=batch)

    def _read(self, name: str, keys: list[str], data: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(keys), GET_BATCH):
            try:
                resp = self.client.get_vectors(
                    **self._args(name),
                    keys=keys[i : i + GET_BATCH],
                    returnData=data,
                    returnMetadata=True,
                )
            except ClientError as exc:
                if _code(exc) == "NotFoundException":
                    return []
                raise
            out += resp.get("vectors", [])
        return out

    def _remove(self, name: str, keys: list[str]) -> None:
        for i in range(0, len(keys), PUT_BATCH):
            try:
                self.client.delete_vectors(**self._args(name), keys=keys[i : i + PUT_BATCH])
            except ClientError as exc:
                if _code(exc) == "NotFoundException":
                    return
                raise

    def _nearest(self, name: str, query: np.ndarray, k: int, min_cosine: float) -> Candidates:
        args: dict[str, Any] = {
            **self._args(name),
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
                if _code(exc) == "NotFoundException":  # nothing was ever written
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

    # -----------------------------------------------------------------------------------------
    # Faces

    def put_faces(self, collection: CollectionRecord, faces: Sequence[FaceRecord]) -> None:
        """Bulk load, paced under the index's write rate (the move command's batches)."""
        self.bulk_rate.wait(len(faces))
        super().put_faces(collection, faces)

    def _put(self, collection: CollectionRecord, vectors: list[Vector]) -> None:
        items = []
        for v in vectors:
            item: dict[str, Any] = {
                "key": v.face_id,
                "data": {"float32": v.embedding.astype(np.float32).tolist()},
            }
            if v.user_id is not None:
                item["metadata"] = {"user": v.user_id}
            items.append(item)
        self._write(self.index_name(collection.incarnation), items)

    def _present(self, collection: CollectionRecord, face_ids: list[str]) -> set[str]:
        name = self.index_name(collection.incarnation)
        return {v["key"] for v in self._read(name, face_ids, data=False)}

    def _delete(self, collection: CollectionRecord, face_ids: list[str]) -> None:
        self._remove(self.index_name(collection.incarnation), face_ids)

    def _query(
        self, collection: CollectionRecord, query: np.ndarray, k: int, min_cosine: float
    ) -> Candidates:
        return self._nearest(self.index_name(collection.incarnation), query, k, min_cosine)

    def _face_users(self, collection: CollectionRecord, face_ids: list[str]) -> dict[str, str]:
        name = self.index_name(collection.incarnation)
        found = self._read(name, face_ids, data=False)
        return {
            v["key"]: v["metadata"]["user"] for v in found if (v.get("metadata") or {}).get("user")
        }

    # -----------------------------------------------------------------------------------------
    # Users

    def _put_users(
        self, collection: CollectionRecord, users: list[tuple[str, np.ndarray, int]]
    ) -> None:
        items = [
            {
                "key": user_id,
                "data": {"float32": np.asarray(v, np.float32).tolist()},
                "metadata": {"faces": n},
            }
            for user_id, v, n in users
        ]
        self._write(self.users_index_name(collection.incarnation), items)

    def _delete_users(self, collection: CollectionRecord, user_ids: list[str]) -> None:
        self._remove(self.users_index_name(collection.incarnation), user_ids)

    def _user_vectors(
        self, collection: CollectionRecord, user_ids: list[str]
    ) -> dict[str, tuple[np.ndarray, int]]:
        found = self._read(self.users_index_name(collection.incarnation), user_ids, data=True)
        return {
            v["key"]: (np.asarray(v["data"]["float32"], np.float32), int(v["metadata"]["faces"]))
            for v in found
        }

    def _query_users(
        self, collection: CollectionRecord, query: np.ndarray, k: int, min_cosine: float
    ) -> Candidates:
        name = self.users_index_name(collection.incarnation)
        return self._nearest(name, query, k, min_cosine)

    # -----------------------------------------------------------------------------------------
    # Collections

    def _drop(self, incarnation: str) -> None:
        for name in (self.users_index_name(incarnation), self.index_name(incarnation)):
            self._known.discard(name)
            try:
                self.client.delete_index(**self._args(name))
            except ClientError as exc:
                if _code(exc) != "NotFoundException":
                    raise

    def _incarnations(self) -> list[str]:
        out: list[str] = []
        args: dict[str, Any] = {"vectorBucketName": self.bucket, "prefix": self.prefix}
        while True:
            resp = self.client.list_indexes(**args)
            for index in resp.get("indexes", []):
                name = index["indexName"]
                if name.startswith(self.prefix) and not name.endswith(USERS_SUFFIX):
                    out.append(name[len(self.prefix) :])
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
