"""DescribeCollection: FaceCount, UserCount, FaceModelVersion, CollectionARN, CreationTimestamp."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rekface.operations.context import Context
from rekface.stores.keys import collection_arn


def describe_collection(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    record = ctx.store.get_collection(request["CollectionId"])
    return {
        "FaceCount": record.face_count,
        "FaceModelVersion": record.face_model_version,
        "CollectionARN": collection_arn(ctx.region, ctx.account_id, record.collection_id),
        "CreationTimestamp": datetime.fromtimestamp(record.created, UTC),
        "UserCount": record.user_count,
    }
