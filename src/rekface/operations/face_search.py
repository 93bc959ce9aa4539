"""What SearchFaces and SearchFacesByImage share: defaults, and matches as calibrated Similarity.

The search backend ranks and filters in cosine; the threshold goes through the calibration of the
collection's recognizer pack (Similarity is monotonic in cosine, ``cosine_at``), and each match's
Similarity is the same function of its cosine as CompareFaces' with that pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from rekface.engine.calibrate import Calibration
from rekface.operations.context import Context
from rekface.operations.face_models import collection_calibration
from rekface.operations.stored_faces import face_json
from rekface.stores.records import CollectionRecord

DEFAULT_MAX_FACES = 80
DEFAULT_THRESHOLD = 80.0
# Backends filter on cosine a hair below the threshold's, so that float32 rounding never drops a
# face whose Similarity reaches the threshold; the exact test is on Similarity below.
_COSINE_SLACK = 1e-6
T = TypeVar("T")


def cosine_floor(calibration: Calibration, threshold: float) -> float:
    """The cosine a backend filters on for a Similarity threshold: a hair below the threshold's,
    so that float32 rounding never drops a match; the decision is then made on Similarity."""
    return calibration.cosine_at(threshold) - _COSINE_SLACK


def above_threshold(
    calibration: Calibration, found: Sequence[T], cosines: Sequence[float], threshold: float
) -> list[tuple[T, float]]:
    """(match, Similarity) for the backend's candidates whose calibrated Similarity reaches it."""
    similarities = calibration.similarity(np.asarray(cosines, np.float64))
    return [(m, float(s)) for m, s in zip(found, similarities, strict=True) if s >= threshold]


def face_matches(
    ctx: Context,
    collection: CollectionRecord,
    embedding: np.ndarray,
    request: dict[str, Any],
    exclude_face_id: str | None = None,
) -> list[dict[str, Any]]:
    threshold = float(request.get("FaceMatchThreshold", DEFAULT_THRESHOLD))
    max_faces = int(request.get("MaxFaces", DEFAULT_MAX_FACES))
    calibration = collection_calibration(ctx, collection)
    found = ctx.search.search(
        collection, embedding, max_faces, cosine_floor(calibration, threshold), exclude_face_id
    )
    return [
        {"Similarity": sim, "Face": face_json(m.face, collection.face_model_version)}
        for m, sim in above_threshold(calibration, found, [m.cosine for m in found], threshold)
    ]
