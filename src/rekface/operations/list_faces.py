"""ListFaces: a collection's faces in FaceId order, a page at a time, optionally only some
FaceIds and/or the faces of one UserId."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.operations.stored_faces import face_json


def list_faces(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    page = ctx.store.list_faces(
        collection,
        max_results=request.get("MaxResults"),
        next_token=request.get("NextToken"),
        face_ids=request.get("FaceIds"),
        user_id=request.get("UserId"),
    )
    response: dict[str, Any] = {
        "Faces": [face_json(f, collection.face_model_version) for f in page.items],
        "FaceModelVersion": collection.face_model_version,
    }
    if page.next_token is not None:
        response["NextToken"] = page.next_token
    return response
