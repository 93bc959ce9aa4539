"""Head pose (Roll, Yaw, Pitch in degrees) from the 5 detector landmarks.

- Roll is the angle of the eye line: the image-right eye below the image-left one is positive
  (the face turned clockwise on screen).
- Yaw and Pitch come from a weak-perspective (scaled orthographic) fit of a generic 3D model of
  the 5 points to the de-rolled landmarks: the 2x3 affine camera is solved by least squares, its
  rows are orthonormalised into the first two rows of a rotation, from which the angles are read.
  Yaw is positive when the nose turns towards the image's right (as in AWS's
  examples), Pitch is positive when the face looks up.

The model's x/y are the frontal positions of the chip template (median dlib chips on LFW-type
photos, so a typical frontal photo reads about 0, 0) in millimetres, scaled by an interpupillary
distance of 63 mm; depths are anthropometric means: the eye centres 24 mm and the mouth corners
22 mm behind the nose tip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rekface.engine.align import TEMPLATE_150


@dataclass(frozen=True)
class Pose:
    roll: float
    yaw: float
    pitch: float


def _model_3d() -> np.ndarray:
    t = TEMPLATE_150 - TEMPLATE_150[:2].mean(0)  # origin between the eyes
    mm = 63.0 / np.linalg.norm(TEMPLATE_150[1] - TEMPLATE_150[0])
    xy = t * mm
    # Symmetrise x: the generic model has a vertical symmetry axis.
    xy[0, 0], xy[1, 0] = -(xy[1, 0] - xy[0, 0]) / 2, (xy[1, 0] - xy[0, 0]) / 2
    xy[3, 0], xy[4, 0] = -(xy[4, 0] - xy[3, 0]) / 2, (xy[4, 0] - xy[3, 0]) / 2
    xy[2, 0] = 0.0
    xy[0, 1] = xy[1, 1] = (xy[0, 1] + xy[1, 1]) / 2
    xy[3, 1] = xy[4, 1] = (xy[3, 1] + xy[4, 1]) / 2
    z = np.array([-24.0, -24.0, 0.0, -22.0, -22.0])  # towards the camera is positive
    return np.column_stack([xy, z])


MODEL_3D = _model_3d()


def estimate_pose(points: np.ndarray) -> Pose:
    """points: [5, 2] pixels in detector order (eyes, nose, mouth corners; image-left first)."""
    p = np.asarray(points, np.float64).reshape(5, 2)
    dx, dy = p[1] - p[0]
    roll = math.atan2(dy, dx)
    c, s = math.cos(-roll), math.sin(-roll)
    upright = (p - p.mean(0)) @ np.array([[c, s], [-s, c]])  # rotate by -roll
    q = MODEL_3D - MODEL_3D.mean(0)
    # upright^T (2x5) = A (2x3) @ q^T (3x5), least squares.
    a, *_ = np.linalg.lstsq(q, upright, rcond=None)
    a = a.T
    r1 = a[0] / np.linalg.norm(a[0])
    r2 = a[1] - (a[1] @ r1) * r1
    r2 /= np.linalg.norm(r2)
    # The rotation is R = Ry(yaw) @ Rx(pitch) (the head nods, then turns), whose first two rows are
    # (cos y, sin y sin p, sin y cos p) and (0, cos p, -sin p): the eye line stays level under any
    # yaw and pitch, so the de-rolled eye line fixes the roll and these rows give the rest.
    pitch = math.atan2(-r2[2], r2[1])
    yaw = math.atan2(r1[1] * math.sin(pitch) + r1[2] * math.cos(pitch), r1[0])
    return Pose(roll=math.degrees(roll), yaw=math.degrees(yaw), pitch=math.degrees(pitch))
