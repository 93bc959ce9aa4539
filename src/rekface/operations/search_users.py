"""SearchUsers: the users of a collection that match a stored face (FaceId) or a user (UserId),
highest Similarity first.

By FaceId the face's embedding is compared with every user's centroid; a face that belongs to a
user finds that user too (the user is what the face is). By UserId the user's own centroid is the
query and the user itself is left out (as SearchFaces leaves out the searched face); a user
without faces has nothing to compare and matches nobody. Exactly one of FaceId and UserId.
"""

from __future__ import annotations

from typing import Any

from rekface.errors import InvalidParameterException, ResourceNotFoundException
from rekface.operations.context import Context
from rekface.operations.user_common import user_matches
from rekface.search.users import store_centroid


def search_users(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    face_id, user_id = request.get("FaceId"), request.get("UserId")
    if (face_id is None) == (user_id is None):
        raise InvalidParameterException("Provide exactly one of FaceId and UserId")
    collection = ctx.store.get_collection(request["CollectionId"])
    response: dict[str, Any] = {}
    if face_id is not None:
        embedding = ctx.search.face_embedding(collection, face_id)
        if embedding is None:
            raise InvalidParameterException(
                f"faceId was not found in the collection: no face {face_id} in "
                f"{collection.collection_id}"
            )
        response["UserMatches"] = user_matches(ctx, collection, embedding, request)
        response["SearchedFace"] = {"FaceId": face_id}
    else:
        if ctx.store.get_user(collection, user_id) is None:
            raise ResourceNotFoundException(
                f"The user {user_id} does not exist in the collection {collection.collection_id}"
            )
        query, _ = store_centroid(ctx.store, collection, user_id)
        matches: list[dict[str, Any]] = []
        if query is not None:
            matches = user_matches(ctx, collection, query, request, exclude_user_id=user_id)
        response["UserMatches"] = matches
        response["SearchedUser"] = {"UserId": user_id}
    response["FaceModelVersion"] = collection.face_model_version
    return response
