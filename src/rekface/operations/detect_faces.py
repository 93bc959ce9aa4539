"""DetectFaces: the 100 largest faces of an image, with the requested attributes."""

from __future__ import annotations

from typing import Any

from rekface.operations.attributes import AttributeSelection
from rekface.operations.context import Context
from rekface.operations.face_json import face_details
from rekface.operations.images import read_image


def detect_faces(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    selection = AttributeSelection.parse(request.get("Attributes"))
    image = read_image(ctx, request["Image"])
    faces = ctx.engine.detect(image)
    return {"FaceDetails": face_details(ctx.engine, image, faces, selection)}
