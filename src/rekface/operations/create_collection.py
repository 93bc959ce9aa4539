"""CreateCollection: a new, empty collection (with optional Tags)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.stores.keys import collection_arn


def create_collection(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    # New collections get the server's default version (REKFACE_FACE_MODEL_VERSION). Its pack is
    # checked where models run (`rekface serve` refuses to start without it; an image operation
    # on a collection whose pack is missing answers a 4xx naming the version), not here: this
    # operation loads no model (on Lambda its function has no models layer).
    version = ctx.settings.face_model_version
    record = ctx.store.create_collection(request["CollectionId"], request.get("Tags"), version)
    return {
        "StatusCode": 200,
        "CollectionArn": collection_arn(ctx.region, ctx.account_id, record.collection_id),
        "FaceModelVersion": record.face_model_version,
    }
