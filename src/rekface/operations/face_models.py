"""Which recognizer pack an operation uses: a collection's own face model version (IndexFaces, the
searches, AssociateFaces), or the server's default (CreateCollection, CompareFaces).

A collection keeps the version it was created with; if this server has no pack of that version
the request is refused with a 4xx naming the version, never answered with another model's
embeddings or Similarity.
"""

from __future__ import annotations

from rekface.engine.calibrate import Calibration
from rekface.engine.packs import UnknownFaceModelVersion, registry
from rekface.errors import InvalidParameterException
from rekface.operations.context import Context
from rekface.stores.records import CollectionRecord


def unavailable(collection: CollectionRecord, error: UnknownFaceModelVersion) -> Exception:
    return InvalidParameterException(
        f"The collection {collection.collection_id} uses face model version "
        f"{collection.face_model_version}, which this server does not have "
        f"({error}); add its recognizer pack (REKFACE_PACKS_DIR)"
    )


def collection_version(ctx: Context, collection: CollectionRecord) -> str:
    """The collection's face model version, once its pack is known to be loadable here."""
    try:
        ctx.engine.recognizer(collection.face_model_version)
    except UnknownFaceModelVersion as exc:
        raise unavailable(collection, exc) from None
    return collection.face_model_version


def collection_calibration(ctx: Context, collection: CollectionRecord) -> Calibration:
    """The collection's Similarity map: from the pack's calibration.json alone, so that scoring
    stored faces (SearchFaces, SearchUsers, AssociateFaces) loads no model and, on Lambda, needs
    neither the models layer nor the engine."""
    try:
        return registry(ctx.settings).calibration(collection.face_model_version)
    except UnknownFaceModelVersion as exc:
        raise unavailable(collection, exc) from None
