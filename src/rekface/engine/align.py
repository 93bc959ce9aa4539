"""Aligned face chips from the 5 detector landmarks: 150x150 for the built-in dlib recognizer,
any size and template for a recognizer pack (``rekface.engine.packs``).

A least-squares similarity transform (Umeyama) maps the 5 points onto ``TEMPLATE_150``, the place
dlib's own pipeline (5-point shape predictor + ``get_face_chip(size=150, padding=0.25)``) puts
them. The chip is sampled bilinearly with the image's edge pixels replicated beyond its border
(as OpenCV's ``warpAffine`` with ``BORDER_REPLICATE``, which the recipe measured), by Pillow's
affine transform on the small region the chip covers. When the face is much larger than the chip,
that region is first downscaled with Pillow's antialiasing filter, so a big face is averaged
rather than point-sampled.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CHIP_SIZE = 150
# Median position of the 5 landmarks (image-left eye, image-right eye, nose tip, image-left mouth
# corner, image-right mouth corner) in the chips dlib's own pipeline cuts, measured on 609 photos
# of shared/faces (../shared/models/recipe/dlib_resnet/align_dlib_chip.py).
TEMPLATE_150 = np.array(
    [
        [46.128, 47.110],
        [106.827, 47.928],
        [76.496, 79.814],
        [49.851, 105.918],
        [102.380, 106.436],
    ],
    np.float64,
)
# Below this many chip pixels per image pixel, the face region is pre-shrunk (antialiased).
_MIN_SAMPLING_SCALE = 0.6


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama) as a 2x3 matrix mapping src onto dst."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    sm, dm = src.mean(0), dst.mean(0)
    s, d = src - sm, dst - dm
    u, sv, vt = np.linalg.svd(d.T @ s / len(src))
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1
    rot = u @ fix @ vt
    scale = np.trace(np.diag(sv) @ fix) / s.var(0).sum()
    return np.hstack([scale * rot, (dm - scale * rot @ sm)[:, None]])


def _inverse(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]


def _footprint(m: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """Integer bounds (x0, y0, x1, y1) of the input region that the output square maps from."""
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    src = corners @ _inverse(m).T
    x0, y0 = np.floor(src.min(0)).astype(int) - 2
    x1, y1 = np.ceil(src.max(0)).astype(int) + 2
    return int(x0), int(y0), int(x1), int(y1)


def _region(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """rgb[y0:y1, x0:x1] with the image's edge pixels replicated where the box leaves the image."""
    x0, y0, x1, y1 = box
    h, w = rgb.shape[:2]
    ys = np.clip(np.arange(y0, y1), 0, h - 1)
    xs = np.clip(np.arange(x0, x1), 0, w - 1)
    inside = x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h
    return rgb[y0:y1, x0:x1] if inside else rgb[ys[:, None], xs[None, :]]


def warp_affine(rgb: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Output pixel (x, y) takes the bilinear sample of input point m^-1 (x, y), pixel centres at
    integer coordinates, edges replicated. Returns float32 0..255 [size, size, 3]."""
    box = _footprint(m, size)
    region = _region(rgb, box)
    # The same transform in the region's coordinates.
    local = m.copy()
    local[:, 2] += m[:, :2] @ np.array([box[0], box[1]], np.float64)
    a, b, c, d, e, f = _inverse(local).ravel()
    # Pillow samples output pixel centres (x + 0.5) and reads input pixel centres at +0.5: shift
    # the offsets so that integer coordinates are pixel centres on both sides, as in OpenCV.
    c += 0.5 - 0.5 * (a + b)
    f += 0.5 - 0.5 * (d + e)
    out = Image.fromarray(np.ascontiguousarray(region)).transform(
        (size, size), Image.AFFINE, (a, b, c, d, e, f), resample=Image.BILINEAR
    )
    return np.asarray(out, np.float32)


def face_chip(
    rgb: np.ndarray,
    points: np.ndarray,
    size: int = CHIP_SIZE,
    template: np.ndarray | None = None,
) -> np.ndarray:
    """The aligned size x size chip (float32 RGB 0..255) of the face with these 5 landmarks,
    placed on ``template`` (5 points in chip pixels; a recognizer pack's alignment), by default
    dlib's, scaled to ``size``."""
    if template is None:
        template = TEMPLATE_150 * (size / CHIP_SIZE)
    template = np.asarray(template, np.float64)
    points = np.asarray(points, np.float64).reshape(5, 2)
    m = similarity(points, template)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale >= _MIN_SAMPLING_SCALE:
        return warp_affine(rgb, m, size)
    # Cut the region the chip covers, shrink it so the chip samples it at about 1:1, and redo
    # the transform in the shrunk region's coordinates.
    box = _footprint(m, size)
    region = Image.fromarray(np.ascontiguousarray(_region(rgb, box)))
    factor = scale / 0.9  # leave the final warp a slight upsampling, never a decimation
    new_size = (max(2, round(region.width * factor)), max(2, round(region.height * factor)))
    small = np.asarray(region.resize(new_size, Image.BILINEAR))
    fx, fy = new_size[0] / region.width, new_size[1] / region.height
    local = (points - [box[0], box[1]]) * [fx, fy]
    return warp_affine(small, similarity(local, template), size)
