"""MediaPipe iris landmarks: pupil centre, iris outline and eye contour of each eye.

Graph contract (``mp_iris_landmark.onnx``): input ``input_1`` float32 [1, 3, 64, 64] RGB 0..1, a
square of 2.3x the eye's corner distance around the corners' midpoint, turned by the face's roll;
the net was trained on one eye side, so the image-right eye is mirrored first (MediaPipe does the
same). Outputs ``output_eyes_contours_and_brows`` [1, 213] = 71 x (x, y, z) and ``output_iris``
[1, 15] = 5 x (x, y, z): the pupil centre then four points on the iris outline, in pixels of the
64 crop. The first 16 contour points are the lids, in the order of the face mesh's eye indices
(``CONTOUR_MESH_INDICES``, right eye; the mirrored left eye gives its mirror twins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from rekface.engine.crops import Crop, square_crop

INPUT_SIZE = 64
CROP_SCALE = 2.3

# Contour 0 is the outer corner, 8 the inner one; 1..7 the lower lid and 9..15 the upper lid, both
# from outer to inner, so contour i + 8 lies above contour i (checked against the mesh's lids).


@dataclass(frozen=True)
class EyeResult:
    pupil: np.ndarray  # [2] image pixels
    iris_radius: float  # image pixels
    contour: np.ndarray  # [71, 2] image pixels: lids (0..15), then brow and outer rings
    corners: tuple[np.ndarray, np.ndarray]  # outer, inner corner the crop was cut around


def decode(contour_raw: np.ndarray, iris_raw: np.ndarray, crop: Crop) -> tuple[np.ndarray, ...]:
    """Raw outputs ([213], [15], crop pixels) -> contour [71, 2], iris [5, 2] in image pixels."""
    contour = crop.points_to_image(np.asarray(contour_raw, np.float64).reshape(71, 3)[:, :2])
    iris = crop.points_to_image(np.asarray(iris_raw, np.float64).reshape(5, 3)[:, :2])
    return contour, iris


def lid_gap(contour: np.ndarray) -> float:
    """Mean distance between the upper and lower lid over the middle of the eye, divided by the
    corner distance (the eye aspect ratio on the iris model's finer contour)."""
    c = np.asarray(contour, np.float64)
    width = float(np.linalg.norm(c[0] - c[8]))
    gaps = np.linalg.norm(c[11:14] - c[3:6], axis=1)  # the three middle lid pairs
    return float(gaps.mean() / max(width, 1e-6))


class Iris:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def run(
        self, rgb: np.ndarray, outer: np.ndarray, inner: np.ndarray, angle: float, mirror: bool
    ) -> EyeResult:
        outer = np.asarray(outer, np.float64)
        inner = np.asarray(inner, np.float64)
        centre = (outer + inner) / 2
        side = float(np.linalg.norm(inner - outer)) * CROP_SCALE
        crop = square_crop(rgb, centre, side, angle, INPUT_SIZE, mirror=mirror)
        x = np.ascontiguousarray((crop.pixels / 255.0).transpose(2, 0, 1)[None], np.float32)
        contour_raw, iris_raw = self._session.run(
            ["output_eyes_contours_and_brows", "output_iris"], {"input_1": x}
        )
        contour, iris = decode(np.ravel(contour_raw), np.ravel(iris_raw), crop)
        radius = float(np.linalg.norm(iris[1:] - iris[0], axis=1).mean())
        return EyeResult(iris[0], radius, contour, (outer, inner))
