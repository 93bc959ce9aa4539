"""Age and gender with face-api's age/gender net, and the AgeRange and Gender they give.

Graph contract (``faceapi_age_gender.onnx``): input ``input`` float32 [N, 112, 112, 3] RGB 0..255,
the aligned face square (``landmarks68``); outputs ``age`` [N] in years (a regression) and
``gender`` [N, 2] softmax (male, female). The net runs on the crop and its mirror image in one
batch and the two answers are averaged: a face and its mirror image have the same age and gender,
so the average only removes noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from rekface.engine.attributes.results import AgeRange, Label
from rekface.engine.crops import Crop

MAX_AGE = 100  # AgeRange is clamped to 0..MAX_AGE


@dataclass(frozen=True)
class AgeGenderResult:
    age: float  # years
    p_female: float  # 0..1


@dataclass(frozen=True)
class AgeRangeModel:
    """AgeRange = [age + bias - half_width, age + bias + half_width], where half_width grows with
    the predicted age (the net's error does): ``base + slope * age``. Fitted by
    ``tools/attributes/fit_attributes.py`` on photos of people with known birth years."""

    bias: float
    base: float
    slope: float

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> AgeRangeModel:
        return cls(float(p["bias"]), float(p["base"]), float(p["slope"]))

    def range(self, age: float) -> AgeRange:
        centre = age + self.bias
        half = self.base + self.slope * max(age, 0.0)
        low = math.floor(centre - half)
        high = math.ceil(centre + half)
        low = min(max(low, 0), MAX_AGE)
        return AgeRange(low=low, high=min(max(high, low), MAX_AGE))


def gender(p_female: float, threshold: float) -> Label:
    """Female when P(female) >= threshold. The threshold (fitted for balanced accuracy) moves the
    decision boundary; the Confidence is the probability with the prior shifted to match, so a
    face exactly at the threshold reads 50."""
    p = min(max(p_female, 1e-6), 1.0 - 1e-6)
    t = min(max(threshold, 1e-6), 1.0 - 1e-6)
    z = math.log(p / (1 - p)) - math.log(t / (1 - t))
    confidence = 100.0 / (1.0 + math.exp(-abs(z)))
    return Label("Female" if z >= 0 else "Male", confidence)


class AgeGenderNet:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def run(self, crop: Crop) -> AgeGenderResult:
        x = np.stack([crop.pixels, crop.pixels[:, ::-1]])
        age, prob = self._session.run(["age", "gender"], {"input": x})
        return AgeGenderResult(age=float(np.mean(age)), p_female=float(np.mean(prob[:, 1])))
