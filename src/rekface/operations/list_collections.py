"""ListCollections: collection ids in id order, a page at a time (MaxResults, NextToken)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context


def list_collections(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    page = ctx.store.list_collections(request.get("MaxResults"), request.get("NextToken"))
    response: dict[str, Any] = {
        "CollectionIds": [c.collection_id for c in page.items],
        "FaceModelVersions": [c.face_model_version for c in page.items],
    }
    if page.next_token is not None:
        response["NextToken"] = page.next_token
    return response
