"""MediaPipe face mesh: 468 points with depth, and the mouth and eye openings measured on them.

Graph contract (``mp_face_landmark.onnx``): input ``input_1`` float32 [1, 3, 192, 192] RGB 0..1,
a square of 1.5x the face box (MediaPipe's own crop), here turned by the face's roll so the face
is upright; outputs ``conv2d_21`` [1, 1404, 1, 1] = 468 x (x, y, z) in pixels of the 192 crop (z
is depth relative to the face's centre, in the same unit, smaller = nearer the camera) and
``conv2d_31`` the face-presence logit.

Mesh indices used here (MediaPipe's canonical topology; "right" is the subject's right, which is
the image's left on an upright, unmirrored photo): 33/133 right-eye corners, 159/145 and 158/153
its lids; 263/362 left-eye corners, 386/374 and 385/380 its lids; 61/291 mouth corners, 13/14
inner lips at the centre, 0/17 outer lips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from rekface.engine.crops import Crop, eye_line_angle, rotate_points, square_crop

INPUT_SIZE = 192
CROP_SCALE = 1.5  # side of the square / longest side of the detector box

RIGHT_EYE_CORNERS = (33, 133)  # outer, inner (image-left eye)
LEFT_EYE_CORNERS = (263, 362)  # outer, inner (image-right eye)
_RIGHT_LIDS = ((159, 145), (158, 153), (160, 144))
_LEFT_LIDS = ((386, 374), (385, 380), (387, 373))
_MOUTH_CORNERS = (61, 291)
_INNER_LIPS = ((13, 14), (82, 87), (312, 317))


@dataclass(frozen=True)
class MeshResult:
    points: np.ndarray  # [468, 3] x, y image pixels; z in image pixels, nearer = smaller
    presence: float  # 0..1, the net's face-presence probability


def decode(raw: np.ndarray, crop: Crop) -> np.ndarray:
    """[1404] crop output -> [468, 3] in image pixels."""
    p = np.asarray(raw, np.float64).reshape(468, 3)
    xy = crop.points_to_image(p[:, :2])
    return np.column_stack([xy, p[:, 2] * crop.scale])


def _dist(p: np.ndarray, i: int, j: int) -> float:
    return float(np.linalg.norm(p[i, :2] - p[j, :2]))


def eye_openness(points: np.ndarray) -> tuple[float, float]:
    """Eye aspect ratio (mean lid gap / corner distance) of the image-left and image-right eyes."""
    p = np.asarray(points, np.float64)

    def ear(lids: tuple[tuple[int, int], ...], corners: tuple[int, int]) -> float:
        gap = np.mean([_dist(p, a, b) for a, b in lids])
        return float(gap / max(_dist(p, *corners), 1e-6))

    return ear(_RIGHT_LIDS, RIGHT_EYE_CORNERS), ear(_LEFT_LIDS, LEFT_EYE_CORNERS)


def mouth_openness(points: np.ndarray) -> float:
    """Inner-lip gap at the centre of the mouth / mouth width."""
    p = np.asarray(points, np.float64)
    gap = np.mean([_dist(p, a, b) for a, b in _INNER_LIPS])
    return float(gap / max(_dist(p, *_MOUTH_CORNERS), 1e-6))


class FaceMesh:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def _run(self, rgb: np.ndarray, centre: np.ndarray, side: float, angle: float) -> MeshResult:
        crop = square_crop(rgb, centre, side, angle, INPUT_SIZE)
        x = np.ascontiguousarray((crop.pixels / 255.0).transpose(2, 0, 1)[None], np.float32)
        raw, flag = self._session.run(["conv2d_21", "conv2d_31"], {"input_1": x})
        presence = float(1.0 / (1.0 + np.exp(-float(np.ravel(flag)[0]))))
        return MeshResult(decode(np.ravel(raw), crop), presence)

    def run(self, rgb: np.ndarray, box: np.ndarray, angle: float, refine: bool) -> MeshResult:
        """The mesh of the face in ``box``; with ``refine``, a second pass on the square MediaPipe
        cuts from a previous mesh when tracking (its own crop, which the net was trained on)."""
        x1, y1, x2, y2 = (float(v) for v in box)
        centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        first = self._run(rgb, centre, max(x2 - x1, y2 - y1) * CROP_SCALE, angle)
        if not refine:
            return first
        return self._run(rgb, *tracking_square(first.points))


def tracking_square(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centre, side and angle of MediaPipe's tracking crop: the mesh's bounding box in the frame
    of its own eye line, grown 1.5x, turned by that line."""
    p = np.asarray(points, np.float64)[:, :2]
    angle = eye_line_angle(p[RIGHT_EYE_CORNERS[0]], p[LEFT_EYE_CORNERS[0]])
    ctr = p.mean(0)
    upright = rotate_points(p, ctr, -angle)
    lo, hi = upright.min(0), upright.max(0)
    return rotate_points((lo + hi) / 2, ctr, angle), float(max(hi - lo)) * CROP_SCALE, angle
