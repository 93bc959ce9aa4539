"""The search-backend interface.

A backend answers "which faces of this collection are closest to this embedding" in cosine
(the operations turn cosines into calibrated Similarity and thresholds into cosines, through
``rekface.engine.calibrate``, so every backend ranks and filters alike). The store (SQLite or
DynamoDB) stays the source of truth for collections, faces and users; a backend is told of every
write after the store committed it (``faces_added``, ``faces_deleted``, ``collection_deleted``), and
must stay correct if a notice is lost (another process wrote): the in-memory backend compares the
collection's version, which every write bumps in the same atomic write as the faces. Backends on
an external engine (S3 Vectors, pgvector: issue 13) implement the same methods and use the
notices to keep their index in step, plus ``faces_adding`` before IndexFaces' store write.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from rekface.search.users import UserMatchCosine, UserVectors
from rekface.stores.base import Store
from rekface.stores.records import (
    AddFacesResult,
    CollectionRecord,
    DeleteFacesResult,
    FaceRecord,
    UsersChange,
)


@dataclass(frozen=True)
class CosineMatch:
    face: FaceRecord  # without its embedding
    cosine: float


class SearchBackend(ABC):
    def __init__(self, store: Store) -> None:
        self.store = store

    @abstractmethod
    def search(
        self,
        collection: CollectionRecord,
        embedding: np.ndarray,
        max_faces: int,
        min_cosine: float,
        exclude_face_id: str | None = None,
    ) -> list[CosineMatch]:
        """The ``max_faces`` faces with the highest cosine to ``embedding``, all >= min_cosine,
        highest first (ties by FaceId), without ``exclude_face_id``. ``collection`` is the record
        the caller just read from the store: the answer reflects at least that version."""

    def face_embedding(self, collection: CollectionRecord, face_id: str) -> np.ndarray | None:
        """A stored face's embedding (SearchFaces), None if the collection has no such face."""
        face = self.store.get_face(collection, face_id)
        return None if face is None else face.embedding

    # Notice of a write about to be made (before the store commits it): a backend on an external
    # engine writes the faces' vectors here, so that the instant the store shows a face it is
    # searchable too (rekface.search.indexed documents the protocol and what a crash leaves).

    def faces_adding(self, collection: CollectionRecord, faces: list[FaceRecord]) -> None:  # noqa: B027
        pass

    # Notices of committed writes (no-ops unless a backend keeps its own copy of the data).

    def faces_added(self, result: AddFacesResult) -> None:  # noqa: B027
        pass

    def faces_deleted(self, result: DeleteFacesResult) -> None:  # noqa: B027
        pass

    def collection_deleted(self, collection: CollectionRecord) -> None:  # noqa: B027
        pass

    def users_changed(self, change: UsersChange) -> None:  # noqa: B027
        """AssociateFaces, DisassociateFaces or DeleteUser changed the UserId of some faces
        (``change.user_ids``: FaceId -> UserId now, None when in no user), in a write that bumped
        the collection's version like every face write."""

    # Users (SearchUsers, SearchUsersByImage): a user is its faces' centroid (search.users).

    def search_users(
        self,
        collection: CollectionRecord,
        embedding: np.ndarray,
        max_users: int,
        min_cosine: float,
        exclude_user_id: str | None = None,
    ) -> list[UserMatchCosine]:
        """The ``max_users`` users whose centroid has the highest cosine to ``embedding``, all
        >= min_cosine, highest first (ties by UserId), without ``exclude_user_id``. A user
        without faces has no centroid and never matches. Reflects at least ``collection``'s
        version, as ``search``."""
        return self.user_vectors(collection).top(embedding, max_users, min_cosine, exclude_user_id)

    def user_vectors(self, collection: CollectionRecord) -> UserVectors:
        """Every user's centroid as of at least ``collection``'s version. This default derives
        them from the store's face table on each call (exact, not fast); a backend that keeps
        the faces, or its own index of users, overrides it (or ``search_users``)."""
        table, _ = self.store.load_faces(collection)
        return UserVectors.from_table(table)
