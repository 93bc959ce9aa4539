"""SearchUsersByImage: the largest face of the image that passes QualityFilter (default NONE)
searched among a collection's users.

Up to the 100 largest faces are detected. The searched face is reported as SearchedFace
(BoundingBox, Confidence); every other face in UnsearchedFaces, with its reasons: the quality
reasons of a face under the bar, and FACE_NOT_LARGEST for a face smaller than the searched one.
No usable face is not an error: empty UserMatches, no SearchedFace.
"""

from __future__ import annotations

from typing import Any

from rekface.operations.attributes import AttributeSelection
from rekface.operations.context import Context
from rekface.operations.face_json import face_detail, source_face
from rekface.operations.face_models import collection_version
from rekface.operations.images import read_image
from rekface.operations.quality_filter import rejection_reasons
from rekface.operations.user_common import user_matches

_DEFAULT = AttributeSelection.parse(None)


def search_users_by_image(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    version = collection_version(ctx, collection)
    level = request.get("QualityFilter", "NONE")
    image = read_image(ctx, request["Image"])
    faces = ctx.engine.detect(image)  # the 100 largest, largest first
    reasons = [rejection_reasons(face, image, level) for face in faces]
    searched = next((i for i, r in enumerate(reasons) if not r), None)
    response: dict[str, Any] = {"UserMatches": []}
    if searched is not None:
        face = faces[searched]
        ctx.engine.embed([face], version)
        assert face.embedding is not None
        response["UserMatches"] = user_matches(ctx, collection, face.embedding, request)
        response["SearchedFace"] = {"FaceDetail": source_face(face, image)}
    response["FaceModelVersion"] = collection.face_model_version
    unsearched = []
    for i, face in enumerate(faces):
        if i == searched:
            continue
        why = list(reasons[i])
        if searched is not None and i > searched:
            why.append("FACE_NOT_LARGEST")
        unsearched.append({"FaceDetails": face_detail(face, image, _DEFAULT), "Reasons": why})
    response["UnsearchedFaces"] = unsearched
    return response
