"""Face image quality (Brightness, Sharpness, 0..100), measured on the aligned face chip.

Both use the chip's inner region (the face, without the background the chip's corners hold), so
they describe the face and not the photo:
- Brightness is the mean luminance (ITU-R BT.601) as a percentage of white.
- Sharpness is the energy of the Laplacian: 100 * (1 - exp(-var(Laplacian) / SHARPNESS_SCALE)).
  The chip has a fixed size, so a face that was small in the photo (upsampled into the chip) reads
  as less sharp, as it should: it carries less detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Inner region of the 150 px chip: from the brows to below the mouth, cheek to cheek.
_INNER = (slice(30, 125), slice(30, 120))
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# var(Laplacian) that maps to Sharpness 63 (1 - 1/e). On the labelled faces of 794 photos of
# ../shared/faces/identities (mostly 150 px LFW crops, faces ~55 px wide, so softer than a modern
# photo) var(Laplacian) has percentiles 1/5/50/95 % = 9.7/15/41/151, which this scale reads as
# Sharpness 18/26/56/95.
SHARPNESS_SCALE = 50.0


@dataclass(frozen=True)
class Quality:
    brightness: float
    sharpness: float


def measure_quality(chip: np.ndarray) -> Quality:
    gray = (np.asarray(chip, np.float32)[_INNER] @ _LUMA).astype(np.float32)
    brightness = float(gray.mean()) / 255.0 * 100.0
    lap = (
        gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4.0 * gray[1:-1, 1:-1]
    )
    sharpness = 100.0 * (1.0 - math.exp(-float(lap.var()) / SHARPNESS_SCALE))
    return Quality(brightness=min(100.0, max(0.0, brightness)), sharpness=sharpness)
