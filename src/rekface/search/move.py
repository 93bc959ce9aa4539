"""Moving an existing collection's vectors into a backend on an external engine, in bulk.

The store is read in FaceId order, a page at a time (``Store.list_faces``, then the embeddings of
the page), and each page is written to the backend (``IndexedSearch.put_faces``: idempotent,
keys are FaceIds), then the users' centroids. After each page a checkpoint (a small JSON file:
the collection's incarnation, the store's page token, the count) is replaced atomically, so an
interrupted move resumes where it stopped: at most one page is written twice, which changes
nothing. A checkpoint of another incarnation (the collection deleted and re-created) is ignored.

While the service keeps running on the new backend, IndexFaces and DeleteFaces keep the index in
step by themselves; a face deleted while the move copies it may leave a vector without a record,
which searches never return (``rekface.search.indexed``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rekface.search.indexed import IndexedSearch
from rekface.stores.base import Store
from rekface.stores.records import CollectionRecord

DEFAULT_BATCH = 500  # S3 Vectors' PutVectors maximum


@dataclass
class Checkpoint:
    incarnation: str
    next_token: str | None
    moved: int
    done: bool = False

    @classmethod
    def read(cls, path: Path, collection: CollectionRecord) -> Checkpoint:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            data = None
        if not data or data.get("incarnation") != collection.incarnation:
            return cls(collection.incarnation, None, 0)
        return cls(data["incarnation"], data["next_token"], data["moved"], data.get("done", False))

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.__dict__))
        os.replace(tmp, path)  # atomic: a crash leaves the old checkpoint or the new one


Progress = Callable[[int, int], None]  # (faces moved so far, faces in the collection)


def move_collection(
    store: Store,
    backend: IndexedSearch,
    collection_id: str,
    checkpoint_path: Path,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> Checkpoint:
    collection = store.get_collection(collection_id)
    state = Checkpoint.read(checkpoint_path, collection)
    if state.done:
        state = Checkpoint(collection.incarnation, None, 0)  # moved before: move again
    total = collection.face_count
    if progress:
        progress(state.moved, total)
    while True:
        page = store.list_faces(collection, max_results=batch, next_token=state.next_token)
        ids = [f.face_id for f in page.items]
        found = store.get_faces(collection, ids, embeddings=True)
        backend.put_faces(collection, [found[f] for f in ids if f in found])
        state.moved += len(ids)
        state.next_token = page.next_token
        state.done = page.next_token is None
        if state.done:
            backend.rebuild_users(collection)
        state.write(checkpoint_path)
        if progress:
            progress(state.moved, max(total, state.moved))
        if state.done:
            return state
