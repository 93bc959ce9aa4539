"""Search on an external vector engine (S3 Vectors, pgvector): the protocol, once.

The store (SQLite or DynamoDB) stays the source of truth; the engine holds one vector per face,
keyed by FaceId, in one index per collection *incarnation* (a collection deleted and re-created
under the same id starts from an empty index, as it starts from no faces). Subclasses implement
small primitives (``_put``, ``_present``, ``_delete``, ``_query``, ``_drop``, ``_incarnations``);
this class decides the order of writes and how searches use the answers.

Invariant, once a call has returned: a face is searchable if and only if the store shows it.

- **Searchable => has a record.** A search asks the engine for candidates, then reads them from
  the store (``Store.get_faces`` with embeddings). A vector without a record is dropped, and every
  answer's record, UserId and cosine come from the store: the cosine is recomputed from the
  stored embedding exactly as the in-memory backend computes it, so ranking, ties (by FaceId),
  thresholds and Similarity are the same on every backend; the engine only proposes candidates.
- **Has a record => searchable.** IndexFaces writes the vectors *before* the store
  (``faces_adding``): when the store commits, the vectors are already there. A crash between the
  two leaves vectors without records, which are invisible (above) and are written again, with
  the same keys, by the retry (FaceIds derive from the image, so a retry has the same ids).
- **DeleteFaces** deletes the records first (the faces vanish from listings and searches at
  once), then the vectors. A crash between the two leaves invisible vectors.
- **Races.** A DeleteFaces of a face that a concurrent IndexFaces of the same image re-creates
  could delete the vector after the re-indexing wrote it. Both sides check after their own
  write: IndexFaces reads back (``_present``) the vectors of the faces it added and writes the
  missing ones; DeleteFaces reads the store for the faces it deleted and writes back the vector
  of any that exists again. Whichever write comes last, one of the two checks runs after it.
- **DeleteCollection** retires the collection in the store, then drops its index. A crash
  between leaves an index of a dead incarnation: ``drop_orphan_indexes``
  (``rekface vectors gc``) finds and drops them.

Vectors without records (a crash, an IndexFaces that failed on a quota) cost storage and take
candidate slots until collected; searches over-fetch to absorb a few.

Users (SearchUsers, SearchUsersByImage) are their faces' centroids (``rekface.search.users``),
kept in a second index per collection keyed by UserId, stamped with the user's face count. The
store decides every user write, so the engine follows it (``users_changed``): the changed faces'
vectors are re-tagged with their UserId (the tag says which user a face leaves when it is
disassociated) and every user that gained or lost faces gets its centroid recomputed from the
store. A search verifies each candidate user against the store (the user exists and has the
stamped number of faces; otherwise its centroid is computed from the store's faces on the spot)
and scores it with the exact cosine to the centroid, as the in-memory backend does. Searches
only read (their functions may not write). A crash between a user write and its notice leaves a
stale entry until that user's next write or a rebuild (``rekface vectors move``): a stale user
found as a candidate is scored right, one not found is missed.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rekface.errors import ResourceNotFoundException
from rekface.search.base import CosineMatch, SearchBackend
from rekface.search.exact import cosines
from rekface.search.users import UserMatchCosine, store_centroid
from rekface.stores.base import Store
from rekface.stores.records import (
    AddFacesResult,
    CollectionRecord,
    DeleteFacesResult,
    FaceRecord,
    UserRecord,
    UsersChange,
)

# Candidates asked beyond MaxFaces: room for the excluded face (SearchFaces) and a few vectors
# whose records are gone.
OVER_FETCH = 16
# Engines compute distances in their own precision (and may quantize): a candidate is kept for
# the exact check if its engine cosine is within this of the threshold.
ENGINE_SLACK = 2e-3


@dataclass(frozen=True)
class Vector:
    face_id: str
    embedding: np.ndarray  # [dims] float32, unit (the collection pack's width)
    user_id: str | None = None


@dataclass(frozen=True)
class Candidates:
    """An engine's answer: FaceIds with the engine's cosine, best first, and whether the engine
    has no further candidate above the asked cosine (so asking for more would not help)."""

    face_ids: list[str]
    cosines: list[float]
    exhausted: bool


def vectors_of(faces: Iterable[FaceRecord]) -> list[Vector]:
    out = []
    for f in faces:
        assert f.embedding is not None, "a face written to a vector index needs its embedding"
        out.append(Vector(f.face_id, np.asarray(f.embedding, np.float32), f.user_id))
    return out


class IndexedSearch(SearchBackend):
    max_top_k: int = 10_000  # the most candidates one query may ask for

    def __init__(self, store: Store) -> None:
        super().__init__(store)

    # -----------------------------------------------------------------------------------------
    # Writes

    def faces_adding(self, collection: CollectionRecord, faces: list[FaceRecord]) -> None:
        if not faces:
            return
        # A retried IndexFaces finds its vectors there: write only the missing ones (reads cost
        # less than writes, and a rewrite would drop the UserId tag of an associated face).
        present = self._present(collection, [f.face_id for f in faces])
        missing = [f for f in faces if f.face_id not in present]
        if missing:
            self._put(collection, vectors_of(missing))

    def faces_added(self, result: AddFacesResult) -> None:
        if not result.added:
            return
        ids = [f.face_id for f in result.added]
        present = self._present(result.collection, ids)
        missing = [f for f in result.added if f.face_id not in present]
        if missing:  # a concurrent DeleteFaces of the same faces deleted them meanwhile
            self._put(result.collection, vectors_of(missing))

    def faces_deleted(self, result: DeleteFacesResult) -> None:
        if not result.deleted:
            return
        self._delete(result.collection, list(result.deleted))
        again = self.store.get_faces(result.collection, result.deleted, embeddings=True)
        if again:  # re-indexed by a concurrent IndexFaces after our store delete
            self._put(result.collection, vectors_of(again.values()))

    def collection_deleted(self, collection: CollectionRecord) -> None:
        self._drop(collection.incarnation)

    def put_faces(self, collection: CollectionRecord, faces: Sequence[FaceRecord]) -> None:
        """Bulk load (``rekface vectors move``): idempotent, keys are FaceIds."""
        if faces:
            self._put(collection, vectors_of(faces))

    # -----------------------------------------------------------------------------------------
    # Search

    def search(
        self,
        collection: CollectionRecord,
        embedding: np.ndarray,
        max_faces: int,
        min_cosine: float,
        exclude_face_id: str | None = None,
    ) -> list[CosineMatch]:
        query = np.asarray(embedding, np.float32)
        k = min(self.max_top_k, max_faces + OVER_FETCH)
        while True:
            found = self._query(collection, query, k, min_cosine - ENGINE_SLACK)
            matches = self._verified(collection, query, found, min_cosine, exclude_face_id)
            if len(matches) >= max_faces or found.exhausted or k >= self.max_top_k:
                break
            k = min(self.max_top_k, 2 * k)  # vectors without records took the room: ask more
        matches.sort(key=lambda m: (-m.cosine, m.face.face_id))
        return matches[:max_faces]

    def _verified(
        self,
        collection: CollectionRecord,
        query: np.ndarray,
        found: Candidates,
        min_cosine: float,
        exclude_face_id: str | None,
    ) -> list[CosineMatch]:
        """The candidates that have a record, with their exact cosine from the stored embedding."""
        ids = [f for f in found.face_ids if f != exclude_face_id]
        records = self.store.get_faces(collection, ids, embeddings=True)
        faces = [records[f] for f in ids if f in records]
        if not faces:
            return []
        matrix = np.stack([np.asarray(f.embedding, np.float32) for f in faces])
        exact = cosines(matrix, np.arange(len(faces)), query)
        return [
            CosineMatch(_without_embedding(f), float(c))
            for f, c in zip(faces, exact.tolist(), strict=True)
            if c >= min_cosine
        ]

    # -----------------------------------------------------------------------------------------
    # Users

    def users_changed(self, change: UsersChange) -> None:
        collection = change.collection
        face_ids = list(change.user_ids)
        if not face_ids:
            return
        before = self._face_users(collection, face_ids)
        faces = self.store.get_faces(collection, face_ids, embeddings=True)
        tagged = [
            Vector(f, np.asarray(faces[f].embedding, np.float32), change.user_ids[f])
            for f in face_ids
            if f in faces
        ]
        if tagged:
            self._put(collection, tagged)
        affected = {u for u in before.values() if u} | {u for u in change.user_ids.values() if u}
        for user_id in sorted(affected):
            self._refresh_user(collection, user_id)

    def _refresh_user(self, collection: CollectionRecord, user_id: str) -> None:
        """Rewrite a user's entry from the store (none for a user without faces)."""
        vector, count = store_centroid(self.store, collection, user_id)
        if vector is None:
            self._delete_users(collection, [user_id])
        else:
            self._put_users(collection, [(user_id, vector, count)])

    def rebuild_users(self, collection: CollectionRecord) -> int:
        """Every user's centroid from the store (the bulk move's last step); how many."""
        count, token = 0, None
        while True:
            page = self.store.list_users(collection, next_token=token)
            for user in page.items:
                self._refresh_user(collection, user.user_id)
                count += 1
            token = page.next_token
            if token is None:
                return count

    def search_users(
        self,
        collection: CollectionRecord,
        embedding: np.ndarray,
        max_users: int,
        min_cosine: float,
        exclude_user_id: str | None = None,
    ) -> list[UserMatchCosine]:
        query = np.asarray(embedding, np.float32)
        k = min(self.max_top_k, max_users + OVER_FETCH)
        records: dict[str, UserRecord | None] = {}  # the store's users, read once each
        while True:
            found = self._query_users(collection, query, k, min_cosine - ENGINE_SLACK)
            ids = [u for u in found.face_ids if u != exclude_user_id]
            stored = self._user_vectors(collection, ids)
            unread = [u for u in ids if u not in records]
            records.update(dict.fromkeys(unread))
            records.update(self.store.get_users(collection, unread))
            matches = []
            for user_id in ids:
                user = records[user_id]
                if user is None or user.face_count == 0:
                    continue  # deleted, or emptied, since its entry was written
                vector, count = stored.get(user_id, (None, -1))
                if vector is None or count != user.face_count:
                    # Stale (a user write whose notice was lost): score it from the store. A
                    # search only reads; the entry is rewritten by the user's next write or a
                    # rebuild (`rekface vectors move`).
                    vector, _ = store_centroid(self.store, collection, user_id)
                    if vector is None:
                        continue
                cosine = float((np.asarray(vector, np.float32) * query).sum(dtype=np.float32))
                if cosine >= min_cosine:
                    matches.append(UserMatchCosine(user_id, cosine))
            if len(matches) >= max_users or found.exhausted or k >= self.max_top_k:
                break
            k = min(self.max_top_k, 2 * k)
        matches.sort(key=lambda m: (-m.cosine, m.user_id))
        return matches[:max_users]

    # -----------------------------------------------------------------------------------------
    # Housekeeping

    def drop_orphan_indexes(self) -> int:
        """Drop the indexes whose collection is gone (``rekface vectors gc``); how many. The
        engine's indexes are listed *before* the live collections are read: an index is created
        after its collection, so one created meanwhile is never taken for dead."""
        found = self._incarnations()
        live: set[str] = set()
        token = None
        while True:
            page = self.store.list_collections(next_token=token)
            for listing in page.items:
                with contextlib.suppress(ResourceNotFoundException):  # deleted meanwhile
                    live.add(self.store.get_collection(listing.collection_id).incarnation)
            token = page.next_token
            if token is None:
                break
        orphans = [inc for inc in found if inc not in live]
        for incarnation in orphans:
            self._drop(incarnation)
        return len(orphans)

    # -----------------------------------------------------------------------------------------
    # Primitives

    @abstractmethod
    def _put(self, collection: CollectionRecord, vectors: list[Vector]) -> None:
        """Write (or overwrite) vectors, creating the collection's index if needed."""

    @abstractmethod
    def _present(self, collection: CollectionRecord, face_ids: list[str]) -> set[str]:
        """Which of these FaceIds have a vector."""

    @abstractmethod
    def _delete(self, collection: CollectionRecord, face_ids: list[str]) -> None:
        """Delete vectors (absent ones and a missing index are fine)."""

    @abstractmethod
    def _query(
        self, collection: CollectionRecord, query: np.ndarray, k: int, min_cosine: float
    ) -> Candidates:
        """Up to ``k`` nearest vectors with engine cosine >= ``min_cosine``, best first."""

    @abstractmethod
    def _face_users(self, collection: CollectionRecord, face_ids: list[str]) -> dict[str, str]:
        """The UserId tag of those of these faces' vectors that have one."""

    @abstractmethod
    def _put_users(
        self, collection: CollectionRecord, users: list[tuple[str, np.ndarray, int]]
    ) -> None:
        """Write (or overwrite) users' centroids with their face counts."""

    @abstractmethod
    def _delete_users(self, collection: CollectionRecord, user_ids: list[str]) -> None: ...

    @abstractmethod
    def _user_vectors(
        self, collection: CollectionRecord, user_ids: list[str]
    ) -> dict[str, tuple[np.ndarray, int]]:
        """Stored centroids and face counts of those users that have an entry."""

    @abstractmethod
    def _query_users(
        self, collection: CollectionRecord, query: np.ndarray, k: int, min_cosine: float
    ) -> Candidates:
        """Up to ``k`` nearest user centroids (ids in ``face_ids``), best first."""

    @abstractmethod
    def _drop(self, incarnation: str) -> None:
        """Delete a collection incarnation's indexes (a missing one is fine)."""

    @abstractmethod
    def _incarnations(self) -> list[str]:
        """The incarnations that have an index."""


def _without_embedding(face: FaceRecord) -> FaceRecord:
    return FaceRecord(
        face.face_id,
        face.image_id,
        face.external_image_id,
        face.box,
        face.confidence,
        face.user_id,
    )
