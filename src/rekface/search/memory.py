"""The in-memory exact backend: each process keeps each searched collection's faces as columns
(a float32 embedding matrix plus compact metadata, ~0.6 KB per face) and searches them exactly.

Coherence: an entry is stamped with the collection's incarnation and version. Every search gets
the collection record the operation just read (that read is the only store access of a warm
search); an entry older than that record is reloaded from the store (once, however many threads
search at the same time). Writes made by this process are applied to the entry in place when they
directly follow the entry's version (``faces_added``/``faces_deleted``), so `rekface serve` never
reloads; other processes' writes show up as a newer version and trigger a reload.

Readers never see a half-applied change: appends go into spare capacity past the rows a reader
took, and deletions and UserId changes build new arrays. Entries are evicted least-recently-used
beyond ``max_bytes``.

Users: an entry also keeps its users' centroids (``search.users.UserVectors``), built from the
table on the first user search of a version. Faces added or deleted leave them valid (a new face
is in no user, and a user's face cannot be deleted); a UserId change (``users_changed``)
recomputes the centroid of the user it touches.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from rekface.search.base import CosineMatch, SearchBackend
from rekface.search.exact import MIN_ROWS, PrunedIndex, top_k
from rekface.search.users import UserVectors, centroid
from rekface.stores.base import Store
from rekface.stores.records import (
    ID_DTYPE,
    AddFacesResult,
    CollectionRecord,
    DeleteFacesResult,
    FaceTable,
    UsersChange,
    id_bytes,
    ids_text,
)

DEFAULT_MAX_BYTES = 4 << 30
_GROWTH = 1.25


def _row_bytes(table: FaceTable) -> int:
    per_row = sum(
        a.itemsize * (a.shape[1] if a.ndim == 2 else 1)
        for a in (
            table.embeddings,
            table.face_ids,
            table.image_ids,
            table.external_ids,
            table.user_ids,
            table.boxes,
            table.confidences,
        )
    )
    return per_row


def _take(table: FaceTable, rows: np.ndarray | slice) -> FaceTable:
    return FaceTable(
        face_ids=table.face_ids[rows],
        image_ids=table.image_ids[rows],
        external_ids=table.external_ids[rows],
        user_ids=table.user_ids[rows],
        boxes=table.boxes[rows],
        confidences=table.confidences[rows],
        embeddings=table.embeddings[rows],
    )


@dataclass
class _Snapshot:
    table: FaceTable  # rows [0, n) of the entry's buffers: never changed in place
    index: PrunedIndex | None  # rows [0, n) valid
    version: int


@dataclass
class _Entry:
    incarnation: str
    version: int
    buffer: FaceTable  # capacity rows; rows [0, n) are live
    n: int
    index: PrunedIndex | None = None  # built on first search once n >= MIN_ROWS
    users: UserVectors | None = None  # the users' centroids of the live rows, once built

    def snapshot(self) -> _Snapshot:
        return _Snapshot(_take(self.buffer, slice(0, self.n)), self.index, self.version)

    @property
    def nbytes(self) -> int:
        per_row = _row_bytes(self.buffer)
        if self.index is not None:
            per_row += self.index.head.shape[1] * 4 + 4
        users = 0 if self.users is None else self.users.vectors.nbytes + 64 * len(self.users)
        return len(self.buffer) * per_row + users

    def append(self, added: FaceTable) -> None:
        need = self.n + len(added)
        dims = added.embeddings.shape[1]
        # An entry loaded empty does not know the collection's dims yet: the first faces tell.
        if need > len(self.buffer) or self.buffer.embeddings.shape[1] != dims:
            capacity = max(need, int(len(self.buffer) * _GROWTH) + 16)
            grown = FaceTable.empty(capacity, dims)
            _copy_into(grown, 0, _take(self.buffer, slice(0, self.n)))
            self.buffer = grown
            if self.index is not None:
                self.index = self.index.grown(capacity)
        _copy_into(self.buffer, self.n, added)
        if self.index is not None:
            self.index.set_rows(self.n, added.embeddings)
        self.n = need

    def remove(self, face_ids: list[str]) -> None:
        live = _take(self.buffer, slice(0, self.n))
        gone = np.isin(live.face_ids, np.array([id_bytes(f) for f in face_ids], ID_DTYPE))
        if gone.any():
            keep = np.flatnonzero(~gone)
            self.buffer = _take(live, keep)  # copies: readers keep the old arrays
            if self.index is not None:
                self.index = self.index.take(keep)
            self.n = len(keep)

    def assign_users(self, user_ids: dict[str, str | None]) -> None:
        """Set the UserId of some faces, in a new column (readers keep the old one), and the
        centroids of the users they leave or join."""
        live = self.buffer.face_ids[: self.n]
        rows = np.flatnonzero(np.isin(live, np.array([id_bytes(f) for f in user_ids], ID_DTYPE)))
        column = self.buffer.user_ids.copy()
        touched: set[str] = set()
        for row, face_id in zip(rows.tolist(), ids_text(live[rows]), strict=True):
            touched.update(u for u in (column[row], user_ids[face_id]) if u is not None)
            column[row] = user_ids[face_id]
        self.buffer = replace(self.buffer, user_ids=column)
        if self.users is not None:
            # A write changes one user: rescan the column for it rather than rebuild them all.
            updates: dict[str, tuple[np.ndarray, int] | None] = {}
            for user_id in touched:
                mine = np.flatnonzero(column[: self.n] == user_id)
                updates[user_id] = (
                    (centroid(self.buffer.embeddings[mine]), len(mine)) if len(mine) else None
                )
            self.users = self.users.replaced(updates)


def _copy_into(dst: FaceTable, at: int, src: FaceTable) -> None:
    end = at + len(src)
    dst.face_ids[at:end] = src.face_ids
    dst.image_ids[at:end] = src.image_ids
    dst.external_ids[at:end] = src.external_ids
    dst.user_ids[at:end] = src.user_ids
    dst.boxes[at:end] = src.boxes
    dst.confidences[at:end] = src.confidences
    dst.embeddings[at:end] = src.embeddings


class InMemoryExactSearch(SearchBackend):
    def __init__(self, store: Store, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(store)
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries and every entry's fields
        self._loading: dict[str, threading.Lock] = {}
        self.loads = 0  # how many times a collection was (re)loaded from the store
        self.index_builds = 0

    # -----------------------------------------------------------------------------------------

    def table(self, collection: CollectionRecord) -> FaceTable:
        """The collection's faces as of at least ``collection.version``."""
        return self._snapshot(collection).table

    def _snapshot(self, collection: CollectionRecord) -> _Snapshot:
        snapshot = self._fresh(collection)
        if snapshot is not None:
            return snapshot
        with self._loading_lock(collection):  # one load at a time; the others wait and reuse it
            snapshot = self._fresh(collection)
            if snapshot is not None:
                return snapshot
            table, record = self.store.load_faces(collection)
            self.loads += 1
            entry = _Entry(record.incarnation, record.version, table, len(table))
            with self._lock:
                self._entries[collection.collection_id] = entry
                self._entries.move_to_end(collection.collection_id)
                self._evict()
                return entry.snapshot()

    def _loading_lock(self, collection: CollectionRecord) -> threading.Lock:
        with self._lock:
            return self._loading.setdefault(collection.collection_id, threading.Lock())

    def _fresh(self, collection: CollectionRecord) -> _Snapshot | None:
        with self._lock:
            entry = self._entries.get(collection.collection_id)
            if (
                entry is None
                or entry.incarnation != collection.incarnation
                or entry.version < collection.version
            ):
                return None
            self._entries.move_to_end(collection.collection_id)
            return entry.snapshot()

    def _indexed(self, collection: CollectionRecord, snapshot: _Snapshot) -> _Snapshot:
        """Build the pruning index of a large collection (once; outside the global lock)."""
        with self._loading_lock(collection):
            with self._lock:
                entry = self._entries.get(collection.collection_id)
                if entry is None or entry.index is not None:
                    return entry.snapshot() if entry is not None else snapshot
                buffer, n = entry.buffer, entry.n
            index = PrunedIndex.fit(buffer.embeddings[:n], capacity=len(buffer))
            self.index_builds += 1
            with self._lock:
                if entry.buffer is buffer and entry.n >= n and entry.index is None:
                    if entry.n > n:  # appended meanwhile, into the same buffer
                        index.set_rows(n, buffer.embeddings[n : entry.n])
                    entry.index = index
                return entry.snapshot()

    def _evict(self) -> None:
        total = sum(e.nbytes for e in self._entries.values())
        while total > self.max_bytes and len(self._entries) > 1:
            _, entry = self._entries.popitem(last=False)
            total -= entry.nbytes

    def memory_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    # -----------------------------------------------------------------------------------------

    def search(
        self,
        collection: CollectionRecord,
        embedding: np.ndarray,
        max_faces: int,
        min_cosine: float,
        exclude_face_id: str | None = None,
    ) -> list[CosineMatch]:
        snapshot = self._snapshot(collection)
        if snapshot.index is None and len(snapshot.table) >= MIN_ROWS:
            snapshot = self._indexed(collection, snapshot)
        table = snapshot.table
        exclude = None
        if exclude_face_id is not None:
            hits = np.flatnonzero(table.face_ids == id_bytes(exclude_face_id))
            exclude = int(hits[0]) if len(hits) else None
        if snapshot.index is not None:
            rows, cosines = snapshot.index.top_k(
                len(table),
                table.embeddings,
                embedding,
                max_faces,
                min_cosine,
                table.face_ids,
                exclude,
            )
        else:
            rows, cosines = top_k(
                table.embeddings, embedding, max_faces, min_cosine, table.face_ids, exclude
            )
        return [
            CosineMatch(face, c)
            for face, c in zip(table.records(rows), cosines.tolist(), strict=True)
        ]

    def user_vectors(self, collection: CollectionRecord) -> UserVectors:
        snapshot = self._snapshot(collection)
        with self._lock:
            entry = self._entries.get(collection.collection_id)
            if entry is not None and entry.users is not None and entry.version == snapshot.version:
                return entry.users
        users = UserVectors.from_table(snapshot.table)  # outside the lock: O(faces of users)
        with self._lock:
            entry = self._entries.get(collection.collection_id)
            if (
                entry is not None
                and entry.version == snapshot.version
                and entry.incarnation == collection.incarnation
            ):
                entry.users = users
                self._evict()
        return users

    def face_embedding(self, collection: CollectionRecord, face_id: str) -> np.ndarray | None:
        table = self.table(collection)
        hits = np.flatnonzero(table.face_ids == id_bytes(face_id))
        return table.embeddings[int(hits[0])].copy() if len(hits) else None

    # -----------------------------------------------------------------------------------------
    # This process's own writes

    def _follows(self, entry: _Entry | None, incarnation: str, versions: list[int]) -> bool:
        """The write's versions directly follow the entry's: the delta is exactly that write."""
        return (
            entry is not None
            and bool(versions)
            and entry.incarnation == incarnation
            and entry.version == versions[0] - 1
            and versions == list(range(versions[0], versions[0] + len(versions)))
        )

    def faces_added(self, result: AddFacesResult) -> None:
        collection = result.collection
        with self._lock:
            entry = self._entries.get(collection.collection_id)
            if self._follows(entry, collection.incarnation, result.versions):
                assert entry is not None
                entry.append(FaceTable.from_records(result.added))
                entry.version = result.versions[-1]
                self._evict()

    def faces_deleted(self, result: DeleteFacesResult) -> None:
        collection = result.collection
        with self._lock:
            entry = self._entries.get(collection.collection_id)
            if self._follows(entry, collection.incarnation, result.versions):
                assert entry is not None
                entry.remove(result.deleted)
                entry.version = result.versions[-1]

    def users_changed(self, change: UsersChange) -> None:
        collection = change.collection
        with self._lock:
            entry = self._entries.get(collection.collection_id)
            if self._follows(entry, collection.incarnation, change.versions):
                assert entry is not None
                entry.assign_users(change.user_ids)
                entry.version = change.versions[-1]

    def collection_deleted(self, collection: CollectionRecord) -> None:
        with self._lock:
            self._entries.pop(collection.collection_id, None)
