"""SearchFaces: the faces of a collection that match one of its faces (by FaceId), the face
itself left out, highest Similarity first."""

from __future__ import annotations

from typing import Any

from rekface.errors import InvalidParameterException
from rekface.operations.context import Context
from rekface.operations.face_search import face_matches


def search_faces(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    face_id = request["FaceId"]
    embedding = ctx.search.face_embedding(collection, face_id)
    if embedding is None:
        raise InvalidParameterException(
            f"faceId was not found in the collection: no face {face_id} in "
            f"{collection.collection_id}"
        )
    return {
        "SearchedFaceId": face_id,
        "FaceMatches": face_matches(ctx, collection, embedding, request, exclude_face_id=face_id),
        "FaceModelVersion": collection.face_model_version,
    }
