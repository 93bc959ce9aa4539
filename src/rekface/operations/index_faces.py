"""IndexFaces: detect the faces of an image and store the good ones in a collection.

Up to 100 largest faces are considered. Faces that fail ``QualityFilter`` (default AUTO) are not
indexed and are reported in UnindexedFaces with their reasons; of the others, the ``MaxFaces``
largest are indexed and the rest reported as EXCEEDS_MAX_FACES (the service filters by quality
first, then by size). FaceIds and the ImageId are derived from the image's pixels and
ExternalImageId (``rekface.stores.keys``), so the same image indexed again into the same
collection adds no duplicate faces: the service documents that behaviour.
"""

from __future__ import annotations

from typing import Any

from rekface.engine.faces import MAX_FACES
from rekface.operations.attributes import AttributeSelection
from rekface.operations.context import Context
from rekface.operations.face_json import bounding_box, face_details
from rekface.operations.face_models import collection_version
from rekface.operations.images import read_image
from rekface.operations.quality_filter import rejection_reasons
from rekface.operations.stored_faces import face_json
from rekface.stores import keys
from rekface.stores.base import f32
from rekface.stores.records import FaceRecord


def index_faces(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    collection = ctx.store.get_collection(request["CollectionId"])
    version = collection_version(ctx, collection)
    selection = AttributeSelection.parse(request.get("DetectionAttributes"))
    level = request.get("QualityFilter", "AUTO")
    limit = min(int(request.get("MaxFaces") or MAX_FACES), MAX_FACES)
    external = request.get("ExternalImageId")
    image = read_image(ctx, request["Image"])

    faces = ctx.engine.detect(image)  # the 100 largest, largest first
    kept: list[int] = []  # ranks of the faces to index
    unindexed: list[tuple[int, list[str]]] = []
    for rank, face in enumerate(faces):
        reasons = rejection_reasons(face, image, level)
        if reasons:
            unindexed.append((rank, reasons))
        elif len(kept) < limit:
            kept.append(rank)
        else:
            unindexed.append((rank, ["EXCEEDS_MAX_FACES"]))
    unindexed.sort()

    ctx.engine.embed([faces[r] for r in kept], version)
    image_id = keys.image_id(
        collection.incarnation, keys.pixels_digest(image.rgb.tobytes(), image.rgb.shape), external
    )
    records = []
    for rank in kept:
        face = faces[rank]
        box = bounding_box(face, image)
        records.append(
            FaceRecord(
                face_id=keys.face_id(image_id, rank),
                image_id=image_id,
                external_image_id=external,
                box=(f32(box["Width"]), f32(box["Height"]), f32(box["Left"]), f32(box["Top"])),
                confidence=f32(face.confidence),
                embedding=face.embedding,
            )
        )
    # Vectors first, then the record: the instant the store shows a face it is searchable (a
    # backend on an external engine writes its vectors here; see rekface.search.indexed).
    ctx.search.faces_adding(collection, records)
    result = ctx.store.add_faces(collection, records)
    ctx.search.faces_added(result)

    details = face_details(ctx.engine, image, [faces[r] for r in kept], selection)
    skipped = face_details(ctx.engine, image, [faces[r] for r, _ in unindexed], selection)
    return {
        "FaceRecords": [
            {"Face": face_json(record, collection.face_model_version), "FaceDetail": detail}
            for record, detail in zip(records, details, strict=True)
        ],
        "FaceModelVersion": collection.face_model_version,
        "UnindexedFaces": [
            {"Reasons": reasons, "FaceDetail": detail}
            for (_, reasons), detail in zip(unindexed, skipped, strict=True)
        ],
    }
