"""ListUsers: a collection's users in UserId order, with their UserStatus, a page at a time
(MaxResults 1..500, default 500)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context


def list_users(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    page = ctx.store.list_users(
        collection, max_results=request.get("MaxResults"), next_token=request.get("NextToken")
    )
    response: dict[str, Any] = {
        "Users": [{"UserId": u.user_id, "UserStatus": u.status} for u in page.items]
    }
    if page.next_token is not None:
        response["NextToken"] = page.next_token
    return response
