"""DeleteUser: the user's faces are disassociated (they stay in the collection), then the user is
deleted. An unknown user is ResourceNotFoundException (unless the ClientRequestToken is that of
the call that deleted it: that call's answer)."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.operations.user_common import notify, request_token


def delete_user(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    token = request_token("DeleteUser", request)
    notify(ctx, ctx.store.delete_user(collection, request["UserId"], token))
    return {}
