"""Small linear classifiers fitted on the hand labels (``tools/attributes/fit_attributes.py``).

Each is a logistic regression on a few named features (``features.py``), standardised with the
training set's mean and scale. It was fitted with balanced class weights, so the logit's sign is
the decision that maximises balanced accuracy; ``temperature`` rescales the logit so that
``sigmoid(|logit| * temperature)`` matches how often the decision was right in cross-validation
(with equal class priors). That value, in percent, is the attribute's Confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rekface.engine.attributes.results import Binary


@dataclass(frozen=True)
class LinearClassifier:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    temperature: float = 1.0

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> LinearClassifier:
        return cls(
            features=tuple(p["features"]),
            mean=np.asarray(p["mean"], np.float64),
            scale=np.asarray(p["scale"], np.float64),
            weights=np.asarray(p["weights"], np.float64),
            bias=float(p["bias"]),
            temperature=float(p.get("temperature", 1.0)),
        )

    def logit(self, values: Mapping[str, float]) -> float:
        x = np.array([values[name] for name in self.features], np.float64)
        return float(((x - self.mean) / self.scale) @ self.weights + self.bias)

    def decide(self, values: Mapping[str, float]) -> Binary:
        return binary_from_logit(self.logit(values), self.temperature)


def binary_from_logit(logit: float, temperature: float = 1.0) -> Binary:
    """Value = logit >= 0; Confidence = 100 * sigmoid(|logit| * temperature), 50..100."""
    z = abs(logit) * temperature
    return Binary(value=logit >= 0.0, confidence=100.0 / (1.0 + math.exp(-z)))
