"""Square, optionally rotated crops of a face region, the input of every attribute model.

The attribute nets were trained on upright faces cut by a square: face-api on the face box padded
to a square with zeros, MediaPipe on a square of 1.5x the face box (eye crops for the iris model).
``square_crop`` cuts that square around a centre, turned by the face's roll so a tilted face reaches
the net upright, fills whatever lies outside the image with zeros (as both pipelines do) and
returns the affine map from crop coordinates back to the image, so that points a net finds in the
crop are reported in image pixels.

Coordinates are continuous with pixel edges at integers on both sides (Pillow's convention for
``Image.transform``): crop point (0, 0) is the crop's top-left corner, (size, size) its
bottom-right one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Below this many crop pixels per image pixel, the region is first shrunk with Pillow's
# antialiasing resize: the affine transform alone point-samples, which aliases big faces.
_MIN_SAMPLING_SCALE = 0.6


@dataclass(frozen=True)
class Crop:
    pixels: np.ndarray  # [size, size, 3] float32 RGB 0..255
    to_image: np.ndarray  # [2, 3] affine: crop coordinates -> image pixels

    def points_to_image(self, points: np.ndarray) -> np.ndarray:
        """[..., 2] crop coordinates -> image pixels."""
        p = np.asarray(points, np.float64)
        return p @ self.to_image[:, :2].T + self.to_image[:, 2]

    def points_from_image(self, points: np.ndarray) -> np.ndarray:
        """[..., 2] image pixels -> crop coordinates."""
        a = self.to_image[:, :2]
        return (np.asarray(points, np.float64) - self.to_image[:, 2]) @ np.linalg.inv(a).T

    @property
    def scale(self) -> float:
        """Image pixels per crop pixel."""
        return float(math.sqrt(abs(np.linalg.det(self.to_image[:, :2]))))


def crop_matrix(centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """The [2, 3] map from crop coordinates to image pixels of a ``side``-pixel square centred at
    ``centre`` and turned by ``angle`` radians (clockwise on screen, the sense of Pose.Roll)."""
    k = side / size
    c, s = math.cos(angle), math.sin(angle)
    a = k * np.array([[c, -s], [s, c]])
    t = np.asarray(centre, np.float64) - a @ np.array([size / 2.0, size / 2.0])
    return np.hstack([a, t[:, None]])


def square_crop(
    rgb: np.ndarray, centre: np.ndarray, side: float, angle: float, size: int, mirror: bool = False
) -> Crop:
    """The ``size`` x ``size`` crop (bilinear) of the square described in ``crop_matrix``; zeros
    where it leaves the image. ``mirror`` flips it left-right (the iris model sees a left eye as
    a right one); ``to_image`` accounts for the flip."""
    m = crop_matrix(centre, side, angle, size)
    if mirror:
        m = m @ np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    h, w = rgb.shape[:2]
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    img = corners @ m[:, :2].T + m[:, 2]
    x0 = int(np.clip(math.floor(img[:, 0].min()) - 2, 0, w))
    y0 = int(np.clip(math.floor(img[:, 1].min()) - 2, 0, h))
    x1 = int(np.clip(math.ceil(img[:, 0].max()) + 2, 0, w))
    y1 = int(np.clip(math.ceil(img[:, 1].max()) + 2, 0, h))
    if x1 - x0 < 2 or y1 - y0 < 2:  # the square lies outside the image: nothing to see
        return Crop(np.zeros((size, size, 3), np.float32), m)
    region = Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    # Crop coordinates -> region coordinates.
    local = m.copy()
    local[:, 2] -= (x0, y0)
    scale = size / side
    if scale < _MIN_SAMPLING_SCALE:
        factor = scale / 0.9  # leave the final transform a slight upsampling
        new = (max(2, round(region.width * factor)), max(2, round(region.height * factor)))
        fx, fy = new[0] / region.width, new[1] / region.height
        region = region.resize(new, Image.BILINEAR)
        local = np.diag([fx, fy]) @ local
    a, b, c, d, e, f = local.ravel()
    out = region.transform(
        (size, size), Image.AFFINE, (a, b, c, d, e, f), Image.BILINEAR, fillcolor=(0, 0, 0)
    )
    return Crop(np.asarray(out, np.float32), m)


def eye_line_angle(left: np.ndarray, right: np.ndarray) -> float:
    """Angle (radians) of the line from the image-left eye to the image-right eye."""
    d = np.asarray(right, np.float64) - np.asarray(left, np.float64)
    return math.atan2(d[1], d[0])


def rotate_points(points: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    """Turn [..., 2] points about ``centre`` by ``angle`` radians (clockwise on screen)."""
    c, s = math.cos(angle), math.sin(angle)
    r = np.array([[c, -s], [s, c]])
    ctr = np.asarray(centre, np.float64)
    return (np.asarray(points, np.float64) - ctr) @ r.T + ctr
