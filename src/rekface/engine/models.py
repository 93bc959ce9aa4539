"""The ONNX models the engine runs: their contract, where they are found, and their sessions.

Each model is pinned by sha256 here, next to the code whose pre- and post-processing depend on
that exact graph; ``layers/models/MANIFEST.tsv`` records where each file came from (package,
version, source hash, license) and a test checks the two agree. Files are verified when loaded, so
a missing or corrupt model fails with one error that names the file. Sessions load once per process
and are shared by every thread (onnxruntime's ``run`` is thread-safe).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rekface.settings import Settings

if TYPE_CHECKING:
    import onnxruntime as ort


@dataclass(frozen=True)
class ModelSpec:
    file: str
    sha256: str
    role: str


DETECTOR = ModelSpec(
    "retinaface_mnet025.onnx",
    "97e7b9c931b6fd301fe488a19a0d1838695b8e6975bf11b672ab78c62b6780a1",
    "face detection + 5 landmarks (RetinaFace MobileNet-0.25)",
)
RECOGNIZER = ModelSpec(
    "dlib_face_recognition_resnet_v1.onnx",
    "eb68be10eea8e9431e31f66f0f4c6693e5bb6359ffab4d2143ac55547f8394a3",
    "face embedding, 128-d (dlib ResNet)",
)
ENGINE_MODELS = (DETECTOR, RECOGNIZER)

# Attribute models (DetectFaces ALL, IndexFaces DetectionAttributes): loaded only when an attribute
# that needs them is requested, so DEFAULT requests never pay for them.
LANDMARKS_68 = ModelSpec(
    "faceapi_landmark68.onnx",
    "929ec95a759f609f96d41412d4b595ce6c9f646615eaee96f5cf1f753b1cdad5",
    "68 face landmarks (face-api)",
)
AGE_GENDER = ModelSpec(
    "faceapi_age_gender.onnx",
    "6db3572089c10e4d3b5e00245625cca2d7a18a40e059e266f3e31fe69a361046",
    "age regression + gender (face-api)",
)
EXPRESSION = ModelSpec(
    "faceapi_expression.onnx",
    "0c9caabf2aee95e9f8620877894ae545d691e1677ee663a45395030d31680d74",
    "7 facial expressions (face-api)",
)
FACE_MESH = ModelSpec(
    "mp_face_landmark.onnx",
    "b6de95f48734c1b847ba1f47a00c069a552feacc7eccd5bcba0032251e7d3809",
    "468-point face mesh with depth (MediaPipe)",
)
IRIS = ModelSpec(
    "mp_iris_landmark.onnx",
    "d330c936d10d2f655de13f18216ae72baecbad8077f49bd7d155f370936a46ba",
    "iris, pupil and eye contour (MediaPipe)",
)
ATTRIBUTE_MODELS = (LANDMARKS_68, AGE_GENDER, EXPRESSION, FACE_MESH, IRIS)


class ModelLoadError(RuntimeError):
    """A model file is missing, unreadable or not the file the engine was written for."""


def locate_in_model_dirs(file: str, settings: Settings) -> Path | None:
    """The first of the models directories (settings.model_dirs(), in order) holding ``file``."""
    for d in settings.model_dirs():
        if (d / file).is_file():
            return d / file
    return None


def not_found_hint(settings: Settings) -> str:
    where = ", ".join(str(d) for d in settings.model_dirs())
    return (
        f"looked in: {where}. "
        "Set REKFACE_MODELS_DIR to the folder holding it (layers/models in the repository)."
    )


def find_model(spec: ModelSpec, settings: Settings) -> Path:
    path = locate_in_model_dirs(spec.file, settings)
    if path is None:
        raise ModelLoadError(
            f"model {spec.file} ({spec.role}) not found; {not_found_hint(settings)}"
        )
    return path


def read_verified(spec: ModelSpec, settings: Settings) -> bytes:
    path = find_model(spec, settings)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"model {spec.file} at {path} could not be read: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ModelLoadError(
            f"model {spec.file} at {path} is corrupt or not the expected file: "
            f"sha256 {digest}, expected {spec.sha256}. Rebuild it with `make models-verify`."
        )
    return data


class SessionCache:
    """Lazily created, verified onnxruntime sessions, one per model, shared across threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec) -> ort.InferenceSession:
        session = self._sessions.get(spec.file)
        if session is not None:
            return session
        with self._lock:
            session = self._sessions.get(spec.file)
            if session is None:
                session = self._create(spec)
                self._sessions[spec.file] = session
        return session

    def get_bytes(self, key: str, load: Callable[[], bytes]) -> ort.InferenceSession:
        """The session of a model that is not one of the specs above (a recognizer pack's),
        created once from the verified bytes ``load`` returns."""
        session = self._sessions.get(key)
        if session is not None:
            return session
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._session(load(), key)
                self._sessions[key] = session
        return session

    def loaded(self) -> frozenset[str]:
        """File names of the models loaded so far (lazy loading is observable, and tested)."""
        return frozenset(self._sessions)

    def _create(self, spec: ModelSpec) -> ort.InferenceSession:
        return self._session(read_verified(spec, self._settings), spec.file)

    def _session(self, data: bytes, name: str) -> ort.InferenceSession:
        # Imported here, not at module level: the store imports this module (packs), and a
        # process that never runs a model (a data Lambda function) should not load onnxruntime.
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        # onnxruntime's own default (0) undercounts cores in some VMs; ask for them explicitly.
        options.intra_op_num_threads = self._settings.threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        # Idle onnxruntime workers spin for a while after each run; with two models alternating on
        # a couple of cores, one model's spinning threads steal the other's time (measured: the
        # embedding took 2x longer right after a detection). Let idle workers sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"model {name} could not be loaded: {exc}") from exc
