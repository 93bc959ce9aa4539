"""UntagResource: remove tags of a collection (by ARN); keys it does not have are ignored."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.stores.keys import collection_id_from_arn


def untag_resource(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection_id = collection_id_from_arn(request["ResourceArn"], ctx.region, ctx.account_id)
    ctx.store.untag_collection(collection_id, request["TagKeys"])
    return {}
