"""AssociateFaces: put faces of a collection in a user (up to 100 faces per user).

The rules (``rekface.stores.users``): a face already in the user is ignored; unknown faces are
FACE_NOT_FOUND, faces of another user ASSOCIATED_TO_A_DIFFERENT_USER; when the user has faces, a
face joins only if its Similarity to the centroid of the user's faces reaches UserMatchThreshold
(default 75), else LOW_MATCH_CONFIDENCE with that Similarity as Confidence; a request that would
take the user past 100 faces is refused whole (ServiceQuotaExceededException). The check and the
write are one atomic store write, so concurrent calls cannot overfill a user or share a face.
"""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.operations.face_models import collection_calibration
from rekface.operations.user_common import (
    ASSOCIATE_THRESHOLD,
    notify,
    outcome_json,
    request_token,
    user_similarity,
)


def associate_faces(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    result = ctx.store.associate_faces(
        collection,
        request["UserId"],
        request["FaceIds"],
        float(request.get("UserMatchThreshold", ASSOCIATE_THRESHOLD)),
        user_similarity(collection_calibration(ctx, collection)),
        request_token("AssociateFaces", request),
    )
    notify(ctx, result)
    assert result.user is not None
    return {
        "AssociatedFaces": [{"FaceId": f} for f in result.changed],
        "UnsuccessfulFaceAssociations": [outcome_json(u) for u in result.unsuccessful],
        "UserStatus": result.user.status,
    }
