"""Colour and texture statistics of face regions placed by the 68 landmarks.

The features that the fitted classifiers (``params.json``) may use for attributes no shipped net
predicts (glasses, beard, mustache): how dark and how textured the eye, mustache and chin regions
are compared with the cheeks, and how many horizontal edges cross the nose bridge and the temples
(spectacle frames). They are measured on the aligned 112 px face crop (upright, face-api's aligned
box), so every region has the same meaning whatever the photo's size, and every statistic is a
ratio to the same face's cheeks, so exposure and sharpness cancel.

All functions are pure: numpy in, numpy out.
"""

from __future__ import annotations

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114])
_EPS = 1e-3


def _box(img: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """img[y0:y1, x0:x1] with the bounds rounded and kept inside; at least one pixel."""
    h, w = img.shape[:2]
    xa = int(np.clip(round(min(x0, x1)), 0, w - 1))
    xb = int(np.clip(round(max(x0, x1)), xa + 1, w))
    ya = int(np.clip(round(min(y0, y1)), 0, h - 1))
    yb = int(np.clip(round(max(y0, y1)), ya + 1, h))
    return img[ya:yb, xa:xb]


def _edges(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|d/dy| (horizontal edges) and |d/dx| (vertical edges), same size as ``gray``."""
    gy = np.zeros_like(gray)
    gx = np.zeros_like(gray)
    gy[1:-1] = np.abs(gray[2:] - gray[:-2]) / 2
    gx[:, 1:-1] = np.abs(gray[:, 2:] - gray[:, :-2]) / 2
    return gy, gx


def _laplacian(gray: np.ndarray) -> np.ndarray:
    lap = np.zeros_like(gray)
    lap[1:-1, 1:-1] = np.abs(
        gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4 * gray[1:-1, 1:-1]
    )
    return lap


def region_features(pixels: np.ndarray, points: np.ndarray) -> dict[str, float]:
    """pixels: [S, S, 3] RGB 0..255 upright face crop; points: [68, 2] landmarks in its pixels.

    Returns named ratios (see the module docstring)."""
    rgb = np.asarray(pixels, np.float64)
    p = np.asarray(points, np.float64)
    gray = rgb @ _LUMA
    # Chroma: red minus green, high on lips and skin, low on dark hair and grey beards.
    red = rgb[..., 0] - rgb[..., 1]
    gy, gx = _edges(gray)
    lap = _laplacian(gray)
    eye_w = (np.linalg.norm(p[39] - p[36]) + np.linalg.norm(p[45] - p[42])) / 2
    eye_y = (p[36:48, 1]).mean()
    nose_y = p[33, 1]

    def stats(x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...]:
        return (
            float(_box(gray, x0, y0, x1, y1).mean()),
            float(_box(gray, x0, y0, x1, y1).std()),
            float(_box(gy, x0, y0, x1, y1).mean()),
            float(_box(gx, x0, y0, x1, y1).mean()),
            float(_box(lap, x0, y0, x1, y1).mean()),
            float(_box(red, x0, y0, x1, y1).mean()),
        )

    # Cheeks: under each eye, above the nose's bottom, inside the eye's width.
    cheek_top = eye_y + 0.6 * eye_w
    cheek_l = stats(p[36, 0], cheek_top, p[39, 0], nose_y)
    cheek_r = stats(p[42, 0], cheek_top, p[45, 0], nose_y)
    cheek = tuple((a + b) / 2 for a, b in zip(cheek_l, cheek_r, strict=True))
    eye_l = stats(p[36, 0], eye_y - 0.35 * eye_w, p[39, 0], eye_y + 0.35 * eye_w)
    eye_r = stats(p[42, 0], eye_y - 0.35 * eye_w, p[45, 0], eye_y + 0.35 * eye_w)
    eyes = tuple((a + b) / 2 for a, b in zip(eye_l, eye_r, strict=True))
    # The nose bridge between the inner eye corners, from the brows down to the eyes.
    brow_y = (p[21, 1] + p[22, 1]) / 2
    bridge = stats(p[39, 0] + 0.1 * eye_w, brow_y, p[42, 0] - 0.1 * eye_w, eye_y)
    # Temples: beyond the outer eye corners, where the arms of spectacles run.
    temple_l = stats(p[0, 0], eye_y - 0.3 * eye_w, p[36, 0] - 0.1 * eye_w, eye_y + 0.3 * eye_w)
    temple_r = stats(p[45, 0] + 0.1 * eye_w, eye_y - 0.3 * eye_w, p[16, 0], eye_y + 0.3 * eye_w)
    temples = tuple((a + b) / 2 for a, b in zip(temple_l, temple_r, strict=True))
    # Under the eyes: the lower rim of a frame.
    under = stats(p[36, 0], eye_y + 0.25 * eye_w, p[45, 0], eye_y + 0.6 * eye_w)
    # Between the nose's bottom and the upper lip, mouth-corner to mouth-corner.
    lip_top = min(p[50, 1], p[51, 1], p[52, 1])
    mustache = stats(p[48, 0], nose_y + 0.15 * (lip_top - nose_y), p[54, 0], lip_top)
    # Chin: below the lower lip, between the jaw points at the mouth corners' width.
    lip_bottom = p[57, 1]
    chin = stats(p[48, 0], lip_bottom + 0.15 * (p[8, 1] - lip_bottom), p[54, 0], p[8, 1])
    # Jaw sides below the mouth corners, outside them.
    jaw_l = stats(p[4, 0], p[48, 1], p[48, 0], p[6, 1])
    jaw_r = stats(p[54, 0], p[54, 1], p[12, 0], p[10, 1])
    jaw = tuple((a + b) / 2 for a, b in zip(jaw_l, jaw_r, strict=True))

    out: dict[str, float] = {}
    for name, s in (
        ("eyes", eyes),
        ("bridge", bridge),
        ("temples", temples),
        ("under", under),
        ("mustache", mustache),
        ("chin", chin),
        ("jaw", jaw),
    ):
        out[f"{name}_dark"] = float(np.log((cheek[0] + 1) / (s[0] + 1)))
        out[f"{name}_contrast"] = float(np.log((s[1] + 1) / (cheek[1] + 1)))
        out[f"{name}_hedges"] = float(np.log((s[2] + _EPS) / (cheek[2] + _EPS)))
        out[f"{name}_vedges"] = float(np.log((s[3] + _EPS) / (cheek[3] + _EPS)))
        out[f"{name}_texture"] = float(np.log((s[4] + _EPS) / (cheek[4] + _EPS)))
        out[f"{name}_red"] = float(s[5] - cheek[5]) / 255.0
    out["eyes_asym"] = abs(eye_l[0] - eye_r[0]) / (cheek[0] + 1)
    return out
