"""CreateCollection: a new, empty collection (with optional Tags)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.stores.keys import collection_arn


def create_collection(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    record = ctx.store.create_collection(request["CollectionId"], request.get("Tags"))
    return {
        "StatusCode": 200,
        "CollectionArn": collection_arn(ctx.region, ctx.account_id, record.collection_id),
        "FaceModelVersion": record.face_model_version,
    }
