"""Stores: collections, faces, tags and users, behind one interface (``base.Store``) with two
backends that pass the same contract tests: SQLite (``rekface serve``) and DynamoDB (AWS)."""

from rekface.stores.base import Store
from rekface.stores.records import (
    AddFacesResult,
    CollectionListing,
    CollectionRecord,
    DeleteFacesResult,
    FaceDeletion,
    FaceRecord,
    FaceTable,
    Page,
    UserRecord,
)

__all__ = [
    "AddFacesResult",
    "CollectionListing",
    "CollectionRecord",
    "DeleteFacesResult",
    "FaceDeletion",
    "FaceRecord",
    "FaceTable",
    "Page",
    "Store",
    "UserRecord",
]
