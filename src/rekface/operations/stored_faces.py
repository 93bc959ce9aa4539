"""Stored faces -> the API's ``Face`` JSON (IndexFaces' FaceRecords, ListFaces, the searches)."""

from __future__ import annotations

from typing import Any

from rekface.stores.records import FaceRecord


def face_json(face: FaceRecord, model_version: str) -> dict[str, Any]:
    w, h, left, top = face.box
    out: dict[str, Any] = {
        "FaceId": face.face_id,
        "BoundingBox": {"Width": w, "Height": h, "Left": left, "Top": top},
        "ImageId": face.image_id,
    }
    if face.external_image_id is not None:
        out["ExternalImageId"] = face.external_image_id
    out["Confidence"] = face.confidence
    out["IndexFacesModelVersion"] = model_version
    if face.user_id is not None:
        out["UserId"] = face.user_id
    return out
