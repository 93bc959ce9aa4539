"""DisassociateFaces: take faces out of a user (they stay in the collection). A face in no user
is ignored; unknown faces are FACE_NOT_FOUND, faces of another user
ASSOCIATED_TO_A_DIFFERENT_USER (with that UserId)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.operations.user_common import notify, outcome_json, request_token


def disassociate_faces(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    result = ctx.store.disassociate_faces(
        collection,
        request["UserId"],
        request["FaceIds"],
        request_token("DisassociateFaces", request),
    )
    notify(ctx, result)
    assert result.user is not None
    return {
        "DisassociatedFaces": [{"FaceId": f} for f in result.changed],
        "UnsuccessfulFaceDisassociations": [outcome_json(u) for u in result.unsuccessful],
        "UserStatus": result.user.status,
    }
