"""Users as vectors: how a user is compared with a face, on every search backend.

A user's vector is the **centroid** of its faces: the mean of their unit embeddings, normalised.
A face (or a user, by its own centroid) is compared with a user by the cosine to that centroid,
mapped to Similarity by the same calibration as face matches. The centroid was chosen by
measurement (``benchmarks/users_search.py``): with users built from 2–3 photos of each person of
../shared/faces/identities and probed with their other photos, the centroid ranks the right user
first more often than the best single face (averaging cancels part of each photo's noise: pose,
light, expression), and it costs one vector per user instead of one per face.

``UserVectors`` is one collection's users at one version: exact top-k by cosine, ties by UserId.
AssociateFaces uses ``centroid`` too: a face joins a user that has faces only if its Similarity
to the centroid of those faces reaches UserMatchThreshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rekface.stores.base import Store
from rekface.stores.records import CollectionRecord, FaceTable

_MARGIN = 1e-4  # float32 rounding between the fast product and the exact cosines


def centroid(embeddings: np.ndarray) -> np.ndarray:
    """The normalised mean of unit embeddings [m, D] (m >= 1). Summed and normalised in float64,
    as ``UserVectors.from_table`` does, so that a user's centroid is the same float32 vector
    whichever way it was computed (a last-bit difference would reorder tied users)."""
    total = np.asarray(embeddings, np.float64).sum(axis=0)
    return (total / np.linalg.norm(total)).astype(np.float32)


def store_centroid(
    store: Store, collection: CollectionRecord, user_id: str
) -> tuple[np.ndarray | None, int]:
    """A user's centroid computed from the store's faces, and its face count; (None, 0) for a
    user without faces. (A user holds at most 100 faces: one page of ListFaces.)"""
    ids = [f.face_id for f in store.list_faces(collection, user_id=user_id).items]
    faces = store.get_faces(collection, ids, embeddings=True)
    members = [f.embedding for f in faces.values() if f.user_id == user_id]
    if not members:
        return None, 0
    return centroid(members), len(members)


@dataclass(frozen=True)
class UserMatchCosine:
    user_id: str
    cosine: float  # between the query and the user's centroid


@dataclass
class UserVectors:
    user_ids: np.ndarray  # [U] str, sorted
    vectors: np.ndarray  # [U, D] float32, unit rows: the users' centroids
    face_counts: np.ndarray  # [U] int

    def __len__(self) -> int:
        return len(self.user_ids)

    @classmethod
    def from_table(cls, table: FaceTable) -> UserVectors:
        """The users of a collection's face table (faces that carry a UserId)."""
        rows = np.flatnonzero(table.user_ids != None)  # noqa: E711 (element-wise on objects)
        if len(rows) == 0:
            return cls.empty(table.embeddings.shape[1])
        owners = table.user_ids[rows].astype(str)
        ids, inverse, counts = np.unique(owners, return_inverse=True, return_counts=True)
        # Per-user sums, vectorised: rows ordered by (their user's face count, user), so that
        # the users with c faces are one [n, c, D] block, summed along its middle axis. (Far
        # faster than np.add.at or a 2-D reduceat.)
        n_users = len(ids)
        order = np.argsort(counts[inverse] * n_users + inverse, kind="stable")
        faces = table.embeddings[rows[order]]
        users_by_count = np.argsort(counts * n_users + np.arange(n_users), kind="stable")
        vectors = np.empty((n_users, faces.shape[1]), np.float32)
        row = user = 0
        for c, n in zip(*np.unique(counts, return_counts=True), strict=True):
            # In float64 one block at a time, as ``centroid`` computes one user.
            block = faces[row : row + n * c].reshape(n, c, -1).astype(np.float64).sum(axis=1)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            vectors[users_by_count[user : user + n]] = block
            row, user = row + n * c, user + n
        return cls(ids, vectors, counts)

    def replaced(self, updates: dict[str, tuple[np.ndarray, int] | None]) -> UserVectors:
        """A copy with some users' (centroid, face count) set, or removed (None)."""
        keep = ~np.isin(self.user_ids, list(updates))
        new = {u: v for u, v in updates.items() if v is not None}
        ids = np.concatenate((self.user_ids[keep], np.array(list(new), str)))
        vectors = np.concatenate(
            (
                self.vectors[keep],
                np.array([v for v, _ in new.values()], np.float32).reshape(
                    len(new), self.vectors.shape[1]
                ),
            )
        )
        counts = np.concatenate((self.face_counts[keep], [n for _, n in new.values()]))
        order = np.argsort(ids, kind="stable")
        return UserVectors(ids[order], vectors[order], counts[order].astype(int))

    @classmethod
    def empty(cls, dims: int = 128) -> UserVectors:
        return cls(np.zeros(0, str), np.zeros((0, dims), np.float32), np.zeros(0, int))

    def vector(self, user_id: str) -> np.ndarray | None:
        i = int(np.searchsorted(self.user_ids, user_id))
        if i < len(self.user_ids) and self.user_ids[i] == user_id:
            return self.vectors[i]
        return None

    def top(
        self,
        query: np.ndarray,
        k: int,
        min_cosine: float,
        exclude_user_id: str | None = None,
    ) -> list[UserMatchCosine]:
        """The ``k`` users of highest cosine >= ``min_cosine``, highest first, ties by UserId."""
        if len(self.user_ids) == 0 or k <= 0:
            return []
        q = np.asarray(query, np.float32)
        approx = self.vectors @ q
        rows = np.flatnonzero(approx >= min_cosine - _MARGIN)
        if exclude_user_id is not None:
            rows = rows[self.user_ids[rows] != exclude_user_id]
        if len(rows) > k:  # keep about the k best, and every user that may tie with the k-th
            a = approx[rows]
            kth = np.partition(a, len(a) - k)[len(a) - k]
            rows = rows[a >= kth - _MARGIN]
        # Exact cosines row by row (as search.exact.cosines), so ties do not depend on position.
        exact = (self.vectors[rows] * q).sum(axis=1, dtype=np.float32)
        keep = exact >= min_cosine
        rows, exact = rows[keep], exact[keep]
        order = np.lexsort((self.user_ids[rows], -exact))[:k]
        return [
            UserMatchCosine(str(u), float(c))
            for u, c in zip(self.user_ids[rows[order]], exact[order], strict=True)
        ]
