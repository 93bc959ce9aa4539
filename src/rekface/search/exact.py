"""Exact top-k by cosine over unit embeddings.

``top_k`` is the reference: one matrix-vector product over every face, then a partial sort; ties
are broken by FaceId so the order is deterministic and the same on every backend.

``PrunedIndex`` gives the same answer while reading about 40 % of the memory, which is what a
search over a million faces is bound by. Face embeddings sit in a narrow cone (a random pair of
faces has cosine 0.84 +- 0.035), so in a PCA basis most of a face sits in a few coordinates. The
index keeps, per face, the first ``HEAD_DIMS`` coordinates in that basis (contiguous float32) and
the norm of the rest. Then for a query q, rotated the same way::

    cos(q, x) <= head(q) . head(x) + |tail(q)| |tail(x)|          (Cauchy-Schwarz on the tail)

so a face whose bound is below the k-th best exact cosine (or below the threshold) cannot be in
the answer. The k-th best is bounded from below by scoring exactly the 4k faces of highest bound.
Only the remaining candidates are scored exactly, from the original embeddings, as ``top_k``
scores them. The rotation is any orthonormal matrix (fitted on a sample of the collection): it
changes the speed, never the answer. A margin of 1e-4 covers float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEAD_DIMS = 48
MIN_ROWS = 20_000  # below this one full product is as fast: no index
SAMPLE_ROWS = 4096
_MARGIN = 1e-4


def cosines(embeddings: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The exact cosines of some rows: each row reduced on its own, in the same order whatever its
    position, so equal embeddings get equal cosines (BLAS kernels differ by row position in the
    last bits, which would break ties at random instead of by FaceId)."""
    return (embeddings[rows] * np.asarray(query, np.float32)).sum(axis=1, dtype=np.float32)


def top_k(
    embeddings: np.ndarray,
    query: np.ndarray,
    k: int,
    min_cosine: float,
    face_ids: np.ndarray,
    exclude_row: int | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` highest cosines >= ``min_cosine`` (highest first) and those cosines.

    ``embeddings`` [N, D] float32 unit rows, ``query`` [D], ``face_ids`` [N] the tie-breaker;
    ``rows``: consider only these rows (the others are known not to qualify). One fast product
    (BLAS) narrows the faces down with a margin, then ``cosines`` decides.
    """
    if len(embeddings) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    q = np.asarray(query, np.float32)
    if rows is None:
        approx = embeddings @ q
        rows = np.flatnonzero(approx >= min_cosine - _MARGIN)
        a = approx[rows]
    else:
        a = embeddings[rows] @ q
        keep = a >= min_cosine - _MARGIN
        rows, a = rows[keep], a[keep]
    if exclude_row is not None:
        keep = rows != exclude_row
        rows, a = rows[keep], a[keep]
    if len(rows) > k:
        kth = np.partition(a, len(a) - k)[len(a) - k]  # about the k-th highest cosine
        rows = rows[a >= kth - _MARGIN]  # and every face that may tie with it
    s = cosines(embeddings, rows, q)
    keep = s >= min_cosine
    rows, s = rows[keep], s[keep]
    order = np.lexsort((face_ids[rows], -s))[:k]
    return rows[order], s[order]


@dataclass
class PrunedIndex:
    rotation: np.ndarray  # [D, D] float32, orthonormal rows, most variance first
    head: np.ndarray  # [capacity, HEAD_DIMS] float32: embeddings @ rotation[:HEAD_DIMS].T
    tail: np.ndarray  # [capacity] float32: norm of the other coordinates

    @classmethod
    def fit(cls, embeddings: np.ndarray, capacity: int, seed: int = 0) -> PrunedIndex:
        n = len(embeddings)
        rng = np.random.default_rng(seed)
        sample = embeddings[rng.choice(n, min(n, SAMPLE_ROWS), replace=False)]
        # Uncentred PCA: the first axis is about the cone's mean direction. (Any orthonormal
        # basis gives the same answers; this one makes the bound tight.)
        _, vectors = np.linalg.eigh((sample.T @ sample).astype(np.float64))
        rotation = np.ascontiguousarray(vectors[:, ::-1].T, np.float32)
        index = cls(
            rotation,
            np.zeros((capacity, HEAD_DIMS), np.float32),
            np.zeros(capacity, np.float32),
        )
        index.set_rows(0, embeddings)
        return index

    def set_rows(self, at: int, embeddings: np.ndarray) -> None:
        end = at + len(embeddings)
        for i in range(at, end, 65536):  # in blocks: no [N, D] temporary
            block = embeddings[i - at : min(end, i + 65536) - at]
            head = block @ self.rotation[:HEAD_DIMS].T
            self.head[i : i + len(block)] = head
            rest = np.einsum("ij,ij->i", block, block) - np.einsum("ij,ij->i", head, head)
            self.tail[i : i + len(block)] = np.sqrt(np.maximum(rest, 0.0))

    def grown(self, capacity: int) -> PrunedIndex:
        head = np.zeros((capacity, HEAD_DIMS), np.float32)
        tail = np.zeros(capacity, np.float32)
        n = min(capacity, len(self.head))
        head[:n], tail[:n] = self.head[:n], self.tail[:n]
        return PrunedIndex(self.rotation, head, tail)

    def take(self, rows: np.ndarray) -> PrunedIndex:
        return PrunedIndex(self.rotation, self.head[rows], self.tail[rows])

    def top_k(
        self,
        n: int,
        embeddings: np.ndarray,
        query: np.ndarray,
        k: int,
        min_cosine: float,
        face_ids: np.ndarray,
        exclude_row: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``top_k`` over the first ``n`` rows, same answer."""
        if n == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.asarray(query, np.float32)
        if 4 * k > n // 8:  # so many answers that the bound cannot prune much
            return top_k(embeddings[:n], q, k, min_cosine, face_ids[:n], exclude_row)
        rotated = self.rotation @ q
        bound = self.tail[:n] * np.float32(np.linalg.norm(rotated[HEAD_DIMS:]))
        bound += self.head[:n] @ rotated[:HEAD_DIMS]
        tau = min_cosine
        rows = np.flatnonzero(bound >= tau - _MARGIN)
        if exclude_row is not None:
            rows = rows[rows != exclude_row]
        m = 4 * k
        if len(rows) > m:
            best = rows[np.argpartition(bound[rows], len(rows) - m)[len(rows) - m :]]
            exact = embeddings[best] @ q
            tau = max(tau, float(np.partition(exact, len(exact) - k)[len(exact) - k]))
            rows = rows[bound[rows] >= tau - _MARGIN]
        if len(rows) > n // 8:  # the bound prunes little here: one full product is cheaper
            return top_k(embeddings[:n], q, k, min_cosine, face_ids[:n], exclude_row)
        return top_k(embeddings, q, k, min_cosine, face_ids, rows=rows)
