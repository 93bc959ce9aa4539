"""The operation layer: one function per Rekognition operation, ``(Context, request) -> response``.

``run`` is the single entry point every adapter uses: it validates the request against the
botocore model (plus the service's own limits), then calls the operation. Operations take and
return plain dicts shaped like the API's JSON and raise only ``rekface.errors`` exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rekface.errors import UnknownOperationException
from rekface.operations.associate_faces import associate_faces
from rekface.operations.compare_faces import compare_faces
from rekface.operations.context import Context
from rekface.operations.create_collection import create_collection
from rekface.operations.create_user import create_user
from rekface.operations.delete_collection import delete_collection
from rekface.operations.delete_faces import delete_faces
from rekface.operations.delete_user import delete_user
from rekface.operations.describe_collection import describe_collection
from rekface.operations.detect_faces import detect_faces
from rekface.operations.disassociate_faces import disassociate_faces
from rekface.operations.index_faces import index_faces
from rekface.operations.list_collections import list_collections
from rekface.operations.list_faces import list_faces
from rekface.operations.list_tags_for_resource import list_tags_for_resource
from rekface.operations.list_users import list_users
from rekface.operations.search_faces import search_faces
from rekface.operations.search_faces_by_image import search_faces_by_image
from rekface.operations.search_users import search_users
from rekface.operations.search_users_by_image import search_users_by_image
from rekface.operations.tag_resource import tag_resource
from rekface.operations.untag_resource import untag_resource
from rekface.spec.operations import BY_NAME
from rekface.spec.validate import validate_request

Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]

HANDLERS: dict[str, Handler] = {
    "DetectFaces": detect_faces,
    "CompareFaces": compare_faces,
    "CreateCollection": create_collection,
    "DescribeCollection": describe_collection,
    "ListCollections": list_collections,
    "DeleteCollection": delete_collection,
    "IndexFaces": index_faces,
    "ListFaces": list_faces,
    "DeleteFaces": delete_faces,
    "SearchFaces": search_faces,
    "SearchFacesByImage": search_faces_by_image,
    "CreateUser": create_user,
    "DeleteUser": delete_user,
    "ListUsers": list_users,
    "AssociateFaces": associate_faces,
    "DisassociateFaces": disassociate_faces,
    "SearchUsers": search_users,
    "SearchUsersByImage": search_users_by_image,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}


def run(ctx: Context, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation not in BY_NAME:
        raise UnknownOperationException(f"Unknown operation: {operation}")
    handler = HANDLERS.get(operation)
    if handler is None:
        raise UnknownOperationException(
            f"{operation} is a Rekognition operation that this version of rekface "
            "does not serve yet"
        )
    validate_request(operation, request)
    return handler(ctx, without_nulls(request))


def without_nulls(value: Any) -> Any:
    """The request with its null members dropped: JSON ``null`` means "not given" (the validator
    reads it so, and the operations then apply their defaults)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value
