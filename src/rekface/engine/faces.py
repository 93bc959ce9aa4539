"""The engine's face record and the pipeline that fills it: detect -> chip -> pose, quality ->
embedding. One ``Face`` is accumulated through the stages and mapped to Rekognition's JSON only by
the operation layer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rekface.engine.align import CHIP_SIZE, face_chip
from rekface.engine.calibrate import load_calibration
from rekface.engine.decode import DecodedImage
from rekface.engine.detect import Detector, DetectorConfig
from rekface.engine.embed import Embedder
from rekface.engine.models import DETECTOR, RECOGNIZER, SessionCache
from rekface.engine.pose import Pose, estimate_pose
from rekface.engine.quality import Quality, measure_quality
from rekface.settings import Settings

if TYPE_CHECKING:
    from rekface.engine.attributes.analyzer import AttributeAnalyzer

MAX_FACES = 100  # Rekognition returns at most the 100 largest faces of an image


@dataclass
class Face:
    """One detected face; geometry in pixels of the image's working copy (``DecodedImage.rgb``)."""

    box: np.ndarray  # [4] x1, y1, x2, y2
    confidence: float  # 0..100
    points: np.ndarray  # [5, 2] eyeLeft, eyeRight, nose, mouthLeft, mouthRight (image-left first)
    pose: Pose
    quality: Quality
    chip: np.ndarray = field(repr=False)  # [150, 150, 3] float32 aligned chip
    embedding: np.ndarray | None = field(default=None, repr=False)  # [128] unit vector
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> float:
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(max(w, 0.0) * max(h, 0.0))


def visible_areas(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Box areas inside the image. "Largest face" ranks by this, so that a face cut by the edge,
    whose box extends past the image, is not taken for the photo's main face."""
    x1, x2 = np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 2], 0, width)
    y1, y2 = np.clip(boxes[:, 1], 0, height), np.clip(boxes[:, 3], 0, height)
    return (x2 - x1) * (y2 - y1)


class FaceEngine:
    """Detection, alignment, embedding and similarity; models load on first use, once."""

    def __init__(self, settings: Settings, detector_config: DetectorConfig | None = None) -> None:
        self._sessions = SessionCache(settings)
        self._detector_config = detector_config or DetectorConfig()
        self._detector: Detector | None = None
        self._embedder: Embedder | None = None
        self._attributes: AttributeAnalyzer | None = None
        self._lock = threading.Lock()

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    self._detector = Detector(self._sessions.get(DETECTOR), self._detector_config)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    self._embedder = Embedder(self._sessions.get(RECOGNIZER), flip=True)
        return self._embedder

    @property
    def attributes(self) -> AttributeAnalyzer:
        """The attribute stages (DetectFaces ALL); their models load only when a requested
        attribute needs them, so DEFAULT requests never load them."""
        if self._attributes is None:
            with self._lock:
                if self._attributes is None:
                    # Imported here so that processes serving only DEFAULT never import (or load)
                    # the attribute stages.
                    from rekface.engine.attributes.analyzer import AttributeAnalyzer

                    self._attributes = AttributeAnalyzer(self._sessions)
        return self._attributes

    def analyze(
        self,
        image: DecodedImage,
        faces: list[Face],
        members: frozenset[str],
        landmarks: bool = False,
        pose: bool = False,
    ) -> None:
        """Fill ``face.attributes`` with the requested optional FaceDetail members that can be
        computed, with every landmark type when ``landmarks``, and with the mesh's head pose
        (``attributes["Pose"]``) when ``pose``."""
        if members or landmarks or pose:
            self.attributes.analyze(image.rgb, faces, members, landmarks, pose)

    def loaded_models(self) -> frozenset[str]:
        """File names of the models this engine has loaded so far."""
        return self._sessions.loaded()

    def warm_up(self) -> None:
        """Load both models and run each once, so the first request pays no set-up."""
        rgb = np.full((160, 160, 3), 128, np.uint8)
        self.detector.detect(rgb)
        self.embedder.embed(np.zeros((1, CHIP_SIZE, CHIP_SIZE, 3), np.float32))
        load_calibration()

    def detect(self, image: DecodedImage, max_faces: int = MAX_FACES) -> list[Face]:
        """The largest ``max_faces`` faces, largest first."""
        found = self.detector.detect(image.rgb)
        areas = visible_areas(found.boxes, image.rgb.shape[1], image.rgb.shape[0])
        order = np.argsort(-areas, kind="stable")[:max_faces]
        faces = []
        for i in order:
            chip = face_chip(image.rgb, found.points[i])
            faces.append(
                Face(
                    box=found.boxes[i].astype(np.float64),
                    confidence=float(found.scores[i]) * 100.0,
                    points=found.points[i].astype(np.float64),
                    pose=estimate_pose(found.points[i]),
                    quality=measure_quality(chip),
                    chip=chip,
                )
            )
        return faces

    def embed(self, faces: list[Face]) -> None:
        """Fill ``embedding`` for every face that lacks one, in one batch."""
        todo = list({id(f): f for f in faces if f.embedding is None}.values())
        if not todo:
            return
        vectors = self.embedder.embed(np.stack([f.chip for f in todo]))
        for face, vector in zip(todo, vectors, strict=True):
            face.embedding = vector

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Calibrated Similarity (0..100) of unit embeddings; b may be a [N, 128] matrix."""
        return load_calibration().similarity(np.asarray(b) @ np.asarray(a))
