"""CreateUser: a new user (no faces yet: UserStatus CREATED) in a collection. An existing
UserId is ConflictException; ClientRequestToken makes a retry answer as the first call did."""

from __future__ import annotations

from typing import Any

from rekface.operations.context import Context
from rekface.operations.user_common import request_token


def create_user(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    token = request_token("CreateUser", request)
    ctx.store.create_user(collection, request["UserId"], token)
    return {}
