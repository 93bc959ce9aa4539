"""CreateCollection: a new, empty collection (with optional Tags)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.stores.keys import collection_arn


def create_collection(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    # New collections get the server's default version; the engine holds its pack (start-up
    # checks it), so the collection is usable the moment it exists.
    version = ctx.engine.packs.get(ctx.engine.default_version).face_model_version
    record = ctx.store.create_collection(request["CollectionId"], request.get("Tags"), version)
    return {
        "StatusCode": 200,
        "CollectionArn": collection_arn(ctx.region, ctx.account_id, record.collection_id),
        "FaceModelVersion": record.face_model_version,
    }
