"""The engine's face record and the pipeline that fills it: detect -> chip -> pose, quality ->
embedding. One ``Face`` is accumulated through the stages and mapped to Rekognition's JSON only by
the operation layer.

Embeddings and Similarity come from a recognizer pack (``rekface.engine.packs``), chosen by face
model version: a collection's for IndexFaces and the searches, the server's default
(``REKFACE_FACE_MODEL_VERSION``) for CompareFaces. Each pack's model, calibration and checks load
on its first use, once per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rekface.engine.align import CHIP_SIZE, TEMPLATE_150, face_chip
from rekface.engine.calibrate import Calibration
from rekface.engine.decode import DecodedImage
from rekface.engine.detect import Detector, DetectorConfig
from rekface.engine.embed import Embedder
from rekface.engine.models import DETECTOR, SessionCache
from rekface.engine.packs import (
    Pack,
    PackError,
    UnknownFaceModelVersion,
    check_session,
    read_model,
    registry,
)
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
    chip: np.ndarray = field(repr=False)  # [150, 150, 3] float32 aligned chip (pack 1.0's)
    # The embedding of the face model version the operation asked for (``FaceEngine.embed``).
    embedding: np.ndarray | None = field(default=None, repr=False)  # [dims] unit vector
    # Every embedding computed so far, by face model version (the attribute stages use 1.0's).
    embeddings: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    # The decoded image (not a copy), to cut the chip of a pack aligned otherwise than 1.0.
    image: np.ndarray | None = field(default=None, repr=False)
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


@dataclass(frozen=True)
class Recognizer:
    """A loaded recognizer pack: its verified model's embedder and its Similarity map."""

    pack: Pack
    embedder: Embedder
    calibration: Calibration

    def chip(self, face: Face) -> np.ndarray:
        return pack_chip(self.pack, face)


def pack_chip(pack: Pack, face: Face) -> np.ndarray:
    """The face's chip as ``pack`` aligns it: the chip cut at detection if the pack aligns as
    pack 1.0 does, else cut again from the image."""
    if pack.alignment_size == CHIP_SIZE and np.allclose(pack.template, TEMPLATE_150):
        return face.chip
    if face.image is None:
        raise ValueError("the face has no image to cut this pack's chip from")
    return face_chip(face.image, face.points, pack.alignment_size, pack.template)


class FaceEngine:
    """Detection, alignment, embedding and similarity; models load on first use, once."""

    def __init__(self, settings: Settings, detector_config: DetectorConfig | None = None) -> None:
        self.settings = settings
        self._sessions = SessionCache(settings)
        self._detector_config = detector_config or DetectorConfig()
        self._detector: Detector | None = None
        self._attributes: AttributeAnalyzer | None = None
        self._lock = threading.Lock()
        # Every pack's pack.json is read (and checked) now: a broken pack fails the start-up.
        self.packs = registry(settings)
        self._recognizers: dict[str, Recognizer] = {}

    @property
    def default_version(self) -> str:
        """The face model version new collections get and CompareFaces uses."""
        return self.settings.face_model_version

    def recognizer(self, version: str | None = None) -> Recognizer:
        """The pack of ``version`` (default: the server's), loaded and checked on first use.
        Raises ``packs.UnknownFaceModelVersion`` if no pack has it, ``PackError`` if broken."""
        version = version or self.default_version
        recognizer = self._recognizers.get(version)
        if recognizer is not None:
            return recognizer
        pack = self.packs.get(version)
        with self._lock:
            recognizer = self._recognizers.get(version)
            if recognizer is None:
                recognizer = self._load(pack)
                self._recognizers[version] = recognizer
        return recognizer

    def _load(self, pack: Pack) -> Recognizer:
        embedder = self.embedder_for(pack)
        return Recognizer(pack, embedder, self.packs.calibration(pack.face_model_version))

    def embedder_for(self, pack: Pack) -> Embedder:
        """The embedder of any pack (registered or not, calibrated or not: ``rekface models
        verify`` and ``calibrate`` use it), its model verified by sha256 and by its shapes."""
        # A shipped model keeps its file name as the key: the attribute stages share its session.
        key = pack.onnx if pack.models_dir else f"pack {pack.face_model_version}: {pack.folder}"
        session = self._sessions.get_bytes(key, lambda: read_model(pack, self.settings))
        check_session(pack, session)
        return Embedder(
            session, flip=pack.flip, spec=pack.input, output=pack.output_name, dims=pack.dims
        )

    def embed_with(self, pack: Pack, embedder: Embedder, faces: list[Face]) -> np.ndarray:
        """[len(faces), dims] embeddings by a pack outside the registry (calibration)."""
        if not faces:
            return np.zeros((0, pack.dims), np.float32)
        return embedder.embed(np.stack([pack_chip(pack, f) for f in faces]))

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    self._detector = Detector(self._sessions.get(DETECTOR), self._detector_config)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        """The default pack's embedder."""
        return self.recognizer().embedder

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
        """Load the detector and every pack, and run the detector and the default pack once, so
        the first request pays no set-up and a broken pack (sha256, shapes, calibration) fails
        the start rather than a request on its collections."""
        rgb = np.full((160, 160, 3), 128, np.uint8)
        self.detector.detect(rgb)
        try:
            recognizer = self.recognizer()
        except UnknownFaceModelVersion as exc:
            raise PackError(f"REKFACE_FACE_MODEL_VERSION / --face-model-version: {exc}") from None
        size = recognizer.pack.input.size
        recognizer.embedder.embed(np.zeros((1, size, size, 3), np.float32))
        for version in self.packs.versions():
            self.recognizer(version)

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
                    image=image.rgb,
                )
            )
        return faces

    def embed(self, faces: list[Face], version: str | None = None) -> None:
        """Set ``embedding`` of every face to its embedding by the pack of ``version`` (default:
        the server's), computing those not computed yet in one batch."""
        recognizer = self.recognizer(version)
        key = recognizer.pack.face_model_version
        todo = list({id(f): f for f in faces if key not in f.embeddings}.values())
        if todo:
            vectors = recognizer.embedder.embed(np.stack([recognizer.chip(f) for f in todo]))
            for face, vector in zip(todo, vectors, strict=True):
                face.embeddings[key] = vector
        for face in faces:
            face.embedding = face.embeddings[key]

    def calibration(self, version: str | None = None) -> Calibration:
        """The pack's Similarity map, without loading its model."""
        return self.packs.calibration(version or self.default_version)

    def similarity(self, a: np.ndarray, b: np.ndarray, version: str | None = None) -> np.ndarray:
        """Calibrated Similarity (0..100) of unit embeddings; b may be a [N, dims] matrix."""
        return self.calibration(version).similarity(np.asarray(b) @ np.asarray(a))
