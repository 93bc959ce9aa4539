"""ListTagsForResource: the tags of a collection (by ARN)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.stores.keys import collection_id_from_arn


def list_tags_for_resource(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection_id = collection_id_from_arn(request["ResourceArn"], ctx.region, ctx.account_id)
    return {"Tags": ctx.store.collection_tags(collection_id)}
