"""What the attribute stages conclude about a face, before it is shaped into Rekognition's JSON
(``rekface.operations.face_json`` does that). ``Face.attributes`` maps FaceDetail member names to
these values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Binary:
    """A yes/no attribute (Smile, EyesOpen, ...); confidence 50..100 is that ``value`` is right."""

    value: bool
    confidence: float


@dataclass(frozen=True)
class Label:
    """A named class with its confidence 0..100 (Gender: Male/Female; one of the Emotions)."""

    value: str
    confidence: float


@dataclass(frozen=True)
class AgeRange:
    low: int
    high: int


@dataclass(frozen=True)
class EyeDirection:
    yaw: float  # degrees, + = towards the image's right
    pitch: float  # degrees, + = up
    confidence: float
