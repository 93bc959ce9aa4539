"""Engine faces -> Rekognition's JSON (FaceDetail, ComparedFace, BoundingBox, Landmarks).

Geometry is reported as ratios of the image's width and height. Boxes are not clipped: a face cut
by the image edge keeps its full extent, slightly outside 0..1, as Rekognition reports it.
"""

from __future__ import annotations

from typing import Any

from rekface.engine.attributes.results import AgeRange, Binary, EyeDirection, Label
from rekface.engine.decode import DecodedImage
from rekface.engine.faces import Face, FaceEngine
from rekface.operations.attributes import AttributeSelection

# The engine's 5 landmarks in detector order, and the order AWS's examples list them in.
MAIN_LANDMARKS = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
_RESPONSE_ORDER = ("eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose")


def bounding_box(face: Face, image: DecodedImage) -> dict[str, float]:
    h, w = image.rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in face.box)
    return {"Width": (x2 - x1) / w, "Height": (y2 - y1) / h, "Left": x1 / w, "Top": y1 / h}


def landmarks(face: Face, image: DecodedImage, all_types: bool = False) -> list[dict[str, Any]]:
    h, w = image.rgb.shape[:2]
    points = {name: face.points[i] for i, name in enumerate(MAIN_LANDMARKS)}
    out = [
        {"Type": name, "X": float(points[name][0]) / w, "Y": float(points[name][1]) / h}
        for name in _RESPONSE_ORDER
    ]
    if all_types:
        # The other 25 types come from the attribute models (engine ``attributes["Landmarks"]``,
        # pixel coordinates), when they ran.
        for name, (x, y) in face.attributes.get("Landmarks", {}).items():
            if name not in points:
                out.append({"Type": name, "X": float(x) / w, "Y": float(y) / h})
    return out


def pose(face: Face) -> dict[str, float]:
    # The mesh's 3D pose when the attribute stages ran (more consistent under mirroring and
    # rotation: benchmarks/pose_mesh.py), else the detector's 5-point estimate.
    p = face.attributes.get("Pose", face.pose)
    return {"Roll": p.roll, "Yaw": p.yaw, "Pitch": p.pitch}


def attribute_json(value: Any) -> Any:
    """An engine attribute result (``rekface.engine.attributes.results``) as the service's JSON."""
    if isinstance(value, Binary):
        return {"Value": value.value, "Confidence": value.confidence}
    if isinstance(value, AgeRange):
        return {"Low": value.low, "High": value.high}
    if isinstance(value, EyeDirection):
        return {"Yaw": value.yaw, "Pitch": value.pitch, "Confidence": value.confidence}
    if isinstance(value, Label):  # Gender
        return {"Value": value.value, "Confidence": value.confidence}
    if isinstance(value, list):  # Emotions
        return [{"Type": e.value, "Confidence": e.confidence} for e in value]
    raise TypeError(f"no JSON form for attribute value {value!r}")


def quality(face: Face) -> dict[str, float]:
    return {"Brightness": face.quality.brightness, "Sharpness": face.quality.sharpness}


def face_detail(face: Face, image: DecodedImage, selection: AttributeSelection) -> dict[str, Any]:
    detail: dict[str, Any] = {"BoundingBox": bounding_box(face, image)}
    for member in sorted(selection.members):
        # Attributes the engine computed for real; one no model computes is left out.
        value = face.attributes.get(member)
        if value is not None:
            detail[member] = attribute_json(value)
    if selection.default:
        detail["Landmarks"] = landmarks(face, image, selection.all_landmarks)
        detail["Pose"] = pose(face)
        detail["Quality"] = quality(face)
    detail["Confidence"] = face.confidence
    return detail


def face_details(
    engine: FaceEngine, image: DecodedImage, faces: list[Face], selection: AttributeSelection
) -> list[dict[str, Any]]:
    """FaceDetails of DetectFaces and of IndexFaces' FaceRecords: one place for both. The
    attribute stages run here, only for the members requested (none for DEFAULT)."""
    engine.analyze(
        image,
        faces,
        selection.members,
        landmarks=selection.all_landmarks,
        pose=selection.default and (bool(selection.members) or selection.all_landmarks),
    )
    return [face_detail(f, image, selection) for f in faces]


def compared_face(face: Face, image: DecodedImage) -> dict[str, Any]:
    return {
        "BoundingBox": bounding_box(face, image),
        "Confidence": face.confidence,
        "Landmarks": landmarks(face, image),
        "Pose": pose(face),
        "Quality": quality(face),
    }


def source_face(face: Face, image: DecodedImage) -> dict[str, Any]:
    return {"BoundingBox": bounding_box(face, image), "Confidence": face.confidence}
