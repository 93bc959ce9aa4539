"""DeleteFaces: DeletedFaces, and UnsuccessfulFaceDeletions with their reasons (FACE_NOT_FOUND;
ASSOCIATED_TO_AN_EXISTING_USER: a user's face must be disassociated before it can be deleted)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context


def delete_faces(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    result = ctx.store.delete_faces(collection, request["FaceIds"])
    ctx.search.faces_deleted(result)
    unsuccessful = []
    for u in result.unsuccessful:
        item: dict[str, Any] = {"FaceId": u.face_id}
        if u.user_id is not None:
            item["UserId"] = u.user_id
        item["Reasons"] = list(u.reasons)
        unsuccessful.append(item)
    return {"DeletedFaces": list(result.deleted), "UnsuccessfulFaceDeletions": unsuccessful}
