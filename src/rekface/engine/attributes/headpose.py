"""Head pose (Roll, Yaw, Pitch) from the 468-point mesh's 3D points.

The mesh gives every point a depth, so the pose is a full 3D fit: the rotation (with scale) that
best maps a canonical face mesh onto the observed points (Kabsch / orthogonal Procrustes), read
off as the 5-point estimate reads its own (``rekface.engine.pose``): Yaw > 0 when the nose turns
towards the image's right, Pitch > 0 when the face looks up, Roll = the in-plane angle, clockwise
on screen positive.

The canonical mesh (``mesh_canonical.json``) is the generalised-Procrustes mean of the meshes of
LFW photos and their mirror images (``tools/attributes/fit_mesh_pose.py``): symmetric, so a
face and its mirror image read opposite Yaw and Roll, and in the average orientation of those
photos, so a typical frontal news photo reads about 0, 0, 0, like the 5-point estimate.

Coordinates: x right, y down, z away from the camera (the mesh's convention).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from rekface.engine.pose import Pose

CANONICAL_FILE = Path(__file__).with_name("mesh_canonical.json")


@functools.lru_cache(maxsize=1)
def canonical_mesh(path: Path = CANONICAL_FILE) -> np.ndarray:
    """[468, 3] canonical points, centred, unit RMS radius."""
    return np.asarray(json.loads(path.read_text())["points"], np.float64)


def rotation_to(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rotation R (3x3, det +1) minimising |s R source_i + t - target_i|^2 (Kabsch)."""
    a = np.asarray(source, np.float64)
    b = np.asarray(target, np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def pose_from_rotation(r: np.ndarray) -> Pose:
    """Roll, Yaw, Pitch (degrees) of a face whose canonical axes the rotation maps to the
    camera's."""
    forward = r @ np.array([0.0, 0.0, -1.0])  # the canonical face looks towards -z (the camera)
    across = r @ np.array([1.0, 0.0, 0.0])  # from the image-left eye to the image-right one
    yaw = math.degrees(math.asin(float(np.clip(forward[0], -1.0, 1.0))))
    pitch = math.degrees(math.asin(float(np.clip(-forward[1], -1.0, 1.0))))
    roll = math.degrees(math.atan2(float(across[1]), float(across[0])))
    return Pose(roll=roll, yaw=yaw, pitch=pitch)


def mesh_pose(points: np.ndarray, canonical: np.ndarray | None = None) -> Pose:
    """points: [468, 3] mesh in image pixels (x, y) and depth (z, same unit)."""
    ref = canonical_mesh() if canonical is None else canonical
    return pose_from_rotation(rotation_to(ref, points))
