"""DeleteCollection: the collection and every face, user and tag of it."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context


def delete_collection(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    record = ctx.store.delete_collection(request["CollectionId"])
    ctx.search.collection_deleted(record)
    return {"StatusCode": 200}
