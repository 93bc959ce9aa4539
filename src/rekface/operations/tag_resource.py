"""TagResource: add or overwrite tags of a collection (by ARN); at most 50 tags per collection."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.stores.keys import collection_id_from_arn


def tag_resource(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection_id = collection_id_from_arn(request["ResourceArn"], ctx.region, ctx.account_id)
    ctx.store.tag_collection(collection_id, request["Tags"])
    return {}
