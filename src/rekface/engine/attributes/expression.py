"""Facial expressions with face-api's expression net, mapped to Rekognition's Emotions.

Graph contract (``faceapi_expression.onnx``): input ``input`` float32 [N, 112, 112, 3] RGB 0..255,
the aligned face square (``landmarks68``); output ``expressions`` [N, 7] softmax over neutral,
happy, sad, angry, fearful, disgusted, surprised. The crop and its mirror image run in one batch
and the probabilities are averaged (on the hand labels this lifted Smile's balanced accuracy by a
point).

Rekognition has eight emotion types; the net has no CONFUSED class, so CONFUSED is never
returned rather than invented.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from rekface.engine.attributes.results import Label
from rekface.engine.crops import Crop

NET_CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
EMOTION_TYPES = ("CALM", "HAPPY", "SAD", "ANGRY", "FEAR", "DISGUSTED", "SURPRISED")


def emotions(probs: np.ndarray) -> list[Label]:
    """[7] probabilities -> Rekognition emotions with Confidence = probability in percent, most
    likely first (as the service lists them)."""
    p = np.asarray(probs, np.float64)
    order = np.argsort(-p, kind="stable")
    return [Label(EMOTION_TYPES[i], float(p[i]) * 100.0) for i in order]


class ExpressionNet:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def run(self, crop: Crop) -> np.ndarray:
        x = np.stack([crop.pixels, crop.pixels[:, ::-1]])
        probs = self._session.run(["expressions"], {"input": x})[0]
        return probs.mean(0)
