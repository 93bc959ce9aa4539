"""``QualityFilter`` (NONE | AUTO | LOW | MEDIUM | HIGH): which detected faces are good enough to
compare, index or search, and the reasons a face is not (IndexFaces' ``UnindexedFaces``).

The bars are limits on the engine's own measurements (Confidence, Sharpness, Brightness, Yaw,
Pitch, face width in the original image's pixels), set from their distribution on the labelled
faces of ../shared/faces/identities (mostly 150 px LFW crops). ``tools/calibration/quality_bars.py``
prints the share of those faces each bar rejects (measured 2026-11-23 on 794 faces):

    reason               LOW     MEDIUM   HIGH
    EXTREME_POSE         0.5 %   1.6 %    8.7 %
    LOW_BRIGHTNESS       0       0        0.4 %
    LOW_CONFIDENCE       0       0        0.5 %
    LOW_SHARPNESS        0       2.1 %   14.0 %
    SMALL_BOUNDING_BOX   0       0        2.9 %
    any                  0.5 %   3.5 %   23.8 %

AUTO ("Rekognition chooses the quality bar") is LOW: it drops what is hardly a usable face and
keeps every face a person would call usable. LOW_FACE_QUALITY, an overall score, is never given:
no model here computes one.
"""

from __future__ import annotations

from dataclasses import dataclass

from rekface.engine.decode import DecodedImage
from rekface.engine.faces import Face


@dataclass(frozen=True)
class QualityBar:
    min_confidence: float
    min_sharpness: float
    min_brightness: float
    max_brightness: float
    max_yaw: float
    max_pitch: float
    min_face_px: float


BARS: dict[str, QualityBar] = {
    "LOW": QualityBar(80.0, 10.0, 10.0, 97.0, 65.0, 45.0, 16.0),
    "MEDIUM": QualityBar(90.0, 20.0, 15.0, 95.0, 50.0, 35.0, 32.0),
    "HIGH": QualityBar(99.0, 35.0, 25.0, 90.0, 35.0, 25.0, 48.0),
}
BARS["AUTO"] = BARS["LOW"]


def rejection_reasons(face: Face, image: DecodedImage, level: str) -> list[str]:
    """Rekognition's reasons why ``face`` fails the ``level`` bar (EXTREME_POSE, LOW_BRIGHTNESS,
    LOW_SHARPNESS, LOW_CONFIDENCE, SMALL_BOUNDING_BOX); empty if it passes or level is NONE."""
    bar = BARS.get(level)
    if bar is None:
        return []
    reasons = []
    if abs(face.pose.yaw) > bar.max_yaw or abs(face.pose.pitch) > bar.max_pitch:
        reasons.append("EXTREME_POSE")
    if not bar.min_brightness <= face.quality.brightness <= bar.max_brightness:
        reasons.append("LOW_BRIGHTNESS")
    if face.quality.sharpness < bar.min_sharpness:
        reasons.append("LOW_SHARPNESS")
    if face.confidence < bar.min_confidence:
        reasons.append("LOW_CONFIDENCE")
    width_px = (face.box[2] - face.box[0]) / image.scale
    if width_px < bar.min_face_px:
        reasons.append("SMALL_BOUNDING_BOX")
    return reasons


def passes(face: Face, image: DecodedImage, level: str) -> bool:
    return not rejection_reasons(face, image, level)
