"""EyeDirection from the iris net: where the pupils sit between the eye corners.

The eye's own frame (its corners) turns with the head, so the pupil's offset from the corners'
midpoint measures the gaze relative to the head, which is what EyeDirection reports ("independent
of the head pose"). Per eye, the offset is measured along the face's eye line (horizontal) and
across it (vertical, + = down the face) in half eye widths, the two eyes are averaged, the resting
offset (``zero``: the median over photos of people looking at the camera) is subtracted, and the
angle is that of a point on a sphere: offset * (half eye width / eyeball radius) = sin(angle).
An adult eye is ~30 mm corner to corner and the eyeball's radius ~12 mm, so the factor is 1.25.

Sign convention, as for Pose: Yaw > 0 when the eyes turn towards the image's right, Pitch > 0
when they look up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rekface.engine.attributes.results import EyeDirection

EYE_HALF_WIDTH_OVER_RADIUS = 15.0 / 12.0


@dataclass(frozen=True)
class GazeModel:
    zero_h: float  # resting offsets, half eye widths
    zero_v: float
    spread: float  # left/right-eye disagreement (degrees) at which Confidence reads 50

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> GazeModel:
        return cls(float(p["zero_h"]), float(p["zero_v"]), float(p["spread"]))


def eye_offset(
    pupil: np.ndarray, corner_a: np.ndarray, corner_b: np.ndarray, roll: float
) -> tuple[float, float]:
    """Pupil offset from the corners' midpoint in half eye widths: (along the eye line towards
    the image's right, across it towards the chin)."""
    a = np.asarray(corner_a, np.float64)
    b = np.asarray(corner_b, np.float64)
    half = float(np.linalg.norm(b - a)) / 2
    u = np.array([math.cos(roll), math.sin(roll)])
    v = np.array([-math.sin(roll), math.cos(roll)])
    d = np.asarray(pupil, np.float64) - (a + b) / 2
    return float(d @ u) / max(half, 1e-6), float(d @ v) / max(half, 1e-6)


def offset_angle(offset: float) -> float:
    """Degrees of gaze for a pupil offset (half eye widths) on a sphere."""
    return math.degrees(math.asin(max(-1.0, min(1.0, offset * EYE_HALF_WIDTH_OVER_RADIUS))))


def eye_direction(offsets: list[tuple[float, float]], model: GazeModel) -> EyeDirection:
    """offsets: (h, v) of each eye (``eye_offset``). Confidence falls as the two eyes disagree:
    100 * 2 ** -(disagreement / spread), 100 when they agree, 50 at ``spread`` degrees."""
    yaws = [offset_angle(h - model.zero_h) for h, _ in offsets]
    pitches = [-offset_angle(v - model.zero_v) for _, v in offsets]
    disagreement = math.hypot(max(yaws) - min(yaws), max(pitches) - min(pitches))
    confidence = 100.0 * 2.0 ** (-disagreement / max(model.spread, 1e-6))
    return EyeDirection(
        yaw=float(np.mean(yaws)), pitch=float(np.mean(pitches)), confidence=confidence
    )
