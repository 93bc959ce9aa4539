"""Calibrated Similarity: a monotonic map from embedding cosine to 0..100.

The map is piecewise linear through knots fitted by ``rekface.engine.calibration_fit`` (run for
the built-in pack 1.0 by ``tools/calibration/fit_similarity.py`` on ../shared/faces identities and
singletons, for other packs by ``rekface models calibrate``) and kept in each pack's
``calibration.json`` (1.0's is ``packs/1.0/calibration.json`` beside this module). The knots put
Similarity 80, 90 and 99 at a bound of the cosines where the false-match rate of people the fit
never saw reaches 1e-3, 1e-4 and 1e-5 (the JSON's ``measured`` block has the fit and person-held-out
figures; docs/recognition-accuracy.md says how). Being monotonic, thresholds on Similarity and on
cosine are interchangeable, which search uses to filter in cosine space.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class Calibration:
    cosines: np.ndarray  # strictly increasing knots
    similarities: np.ndarray  # increasing, from 0 to 100
    model: str  # the embedding model the knots were fitted for

    def similarity(self, cosine: np.ndarray | float) -> np.ndarray:
        return np.interp(cosine, self.cosines, self.similarities)

    def cosine_at(self, similarity: float) -> float:
        """The smallest cosine whose Similarity is at least ``similarity``."""
        return float(np.interp(similarity, self.similarities, self.cosines))


def from_dict(data: dict) -> Calibration:
    cos = np.asarray([k[0] for k in data["knots"]], np.float64)
    sim = np.asarray([k[1] for k in data["knots"]], np.float64)
    if not (np.all(np.diff(cos) > 0) and np.all(np.diff(sim) >= 0)):
        raise ValueError("calibration knots must be increasing")
    if sim[0] != 0 or sim[-1] != 100:
        raise ValueError("calibration must span Similarity 0..100")
    return Calibration(cosines=cos, similarities=sim, model=data["model"])


# The built-in pack 1.0's calibration (its pack folder is rekface/engine/packs/1.0/).
BUILTIN_CALIBRATION = (
    resources.files("rekface.engine").joinpath("packs").joinpath("1.0").joinpath("calibration.json")
)


@functools.cache
def load_calibration() -> Calibration:
    """The built-in pack 1.0's map (dlib ResNet); other packs' maps are read by
    ``rekface.engine.packs.read_calibration``."""
    text = BUILTIN_CALIBRATION.read_text()
    return from_dict(json.loads(text))
