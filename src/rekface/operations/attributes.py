"""Which face attributes a request asks for (DetectFaces ``Attributes``, IndexFaces
``DetectionAttributes``): DEFAULT, ALL, or individual names, combined as a union."""

from __future__ import annotations

from dataclasses import dataclass

# Attribute name in the request -> FaceDetail member in the response.
INDIVIDUAL = {
    "AGE_RANGE": "AgeRange",
    "BEARD": "Beard",
    "EMOTIONS": "Emotions",
    "EYE_DIRECTION": "EyeDirection",
    "EYEGLASSES": "Eyeglasses",
    "EYES_OPEN": "EyesOpen",
    "GENDER": "Gender",
    "MOUTH_OPEN": "MouthOpen",
    "MUSTACHE": "Mustache",
    "FACE_OCCLUDED": "FaceOccluded",
    "SMILE": "Smile",
    "SUNGLASSES": "Sunglasses",
}


@dataclass(frozen=True)
class AttributeSelection:
    default: bool  # Landmarks (the 5 main ones), Pose, Quality
    members: frozenset[str]  # FaceDetail members beyond BoundingBox/Confidence and the defaults
    all_landmarks: bool  # ALL returns every landmark type, not only the main five

    @classmethod
    def parse(cls, names: list[str] | None) -> AttributeSelection:
        names = list(names or ["DEFAULT"])
        everything = "ALL" in names
        members = (
            frozenset(INDIVIDUAL.values())
            if everything
            else frozenset(INDIVIDUAL[n] for n in names if n in INDIVIDUAL)
        )
        return cls(
            default="DEFAULT" in names or everything, members=members, all_landmarks=everything
        )
