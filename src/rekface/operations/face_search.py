"""What SearchFaces and SearchFacesByImage share: defaults, and matches as calibrated Similarity.

The search backend ranks and filters in cosine; the threshold goes through the calibration
(Similarity is monotonic in cosine, ``cosine_at``), and each match's Similarity is the same
function of its cosine as CompareFaces'.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rekface.engine.calibrate import load_calibration
from rekface.operations.context import Context
from rekface.operations.stored_faces import face_json
from rekface.stores.records import CollectionRecord

DEFAULT_MAX_FACES = 80
DEFAULT_THRESHOLD = 80.0
# Backends filter on cosine a hair below the threshold's, so that float32 rounding never drops a
# face whose Similarity reaches the threshold; the exact test is on Similarity below.
_COSINE_SLACK = 1e-6


def face_matches(
    ctx: Context,
    collection: CollectionRecord,
    embedding: np.ndarray,
    request: dict[str, Any],
    exclude_face_id: str | None = None,
) -> list[dict[str, Any]]:
    threshold = float(request.get("FaceMatchThreshold", DEFAULT_THRESHOLD))
    max_faces = int(request.get("MaxFaces", DEFAULT_MAX_FACES))
    calibration = load_calibration()
    found = ctx.search.search(
        collection,
        embedding,
        max_faces,
        calibration.cosine_at(threshold) - _COSINE_SLACK,
        exclude_face_id,
    )
    similarities = calibration.similarity(np.array([m.cosine for m in found], np.float64))
    return [
        {"Similarity": float(s), "Face": face_json(m.face, collection.face_model_version)}
        for m, s in zip(found, similarities, strict=True)
        if s >= threshold
    ]
