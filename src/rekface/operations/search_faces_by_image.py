"""SearchFacesByImage: the largest face of the image (after QualityFilter, default NONE) searched
in a collection. No face: InvalidParameterException, as the service answers."""

from __future__ import annotations

from typing import Any

from rekface.errors import InvalidParameterException
from rekface.operations.context import Context
from rekface.operations.face_json import bounding_box
from rekface.operations.face_models import collection_version
from rekface.operations.face_search import face_matches
from rekface.operations.images import read_image
from rekface.operations.quality_filter import passes


def search_faces_by_image(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    version = collection_version(ctx, collection)
    level = request.get("QualityFilter", "NONE")
    image = read_image(ctx, request["Image"])
    # Without a filter only the largest face matters: skip aligning the others.
    detected = ctx.engine.detect(image, max_faces=1 if level == "NONE" else 100)
    faces = [f for f in detected if passes(f, image, level)]
    if not faces:
        raise InvalidParameterException(
            "There are no faces in the image. Should be at least 1."
            + (" (none passes the quality filter)" if detected else "")
        )
    face = faces[0]
    ctx.engine.embed([face], version)
    assert face.embedding is not None
    return {
        "SearchedFaceBoundingBox": bounding_box(face, image),
        "SearchedFaceConfidence": face.confidence,
        "FaceMatches": face_matches(ctx, collection, face.embedding, request),
        "FaceModelVersion": collection.face_model_version,
    }
