"""Exact top-k by cosine over unit embeddings: one matrix-vector product, then a partial sort.

Pure numpy, no index and no approximation: the answer equals sorting every face by its cosine
(ties broken by FaceId so that the order is deterministic and the same on every backend).
"""

from __future__ import annotations

import numpy as np


def top_k(
    embeddings: np.ndarray,
    query: np.ndarray,
    k: int,
    min_cosine: float,
    face_ids: np.ndarray,
    exclude_row: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` highest cosines >= ``min_cosine`` (highest first) and those cosines.

    ``embeddings`` [N, D] float32 unit rows, ``query`` [D], ``face_ids`` [N] the tie-breaker.
    """
    if len(embeddings) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores = embeddings @ np.asarray(query, np.float32)
    rows = np.flatnonzero(scores >= min_cosine)
    if exclude_row is not None:
        rows = rows[rows != exclude_row]
    if len(rows) > k:
        s = scores[rows]
        kth = np.partition(s, len(s) - k)[len(s) - k]  # the k-th highest cosine
        rows = rows[s >= kth]  # keeps every face tied with it, for the FaceId tie-break
    order = np.lexsort((face_ids[rows], -scores[rows]))[:k]
    rows = rows[order]
    return rows, scores[rows]
