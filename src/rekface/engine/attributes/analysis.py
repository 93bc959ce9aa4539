"""One face's attribute stages, each run at most once and only when something asks for it.

``FaceAnalysis`` holds lazily computed stages (68 landmarks, age/gender, expressions, mesh, iris)
and the named scalar features the fitted classifiers read (``feature(name)``). A request for Smile
runs the landmark and expression nets and nothing else; a request for EyesOpen runs the mesh and
the iris net and nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from rekface.engine.attributes.age_gender import AgeGenderNet, AgeGenderResult
from rekface.engine.attributes.expression import NET_CLASSES, ExpressionNet
from rekface.engine.attributes.iris import EyeResult, Iris, lid_gap
from rekface.engine.attributes.landmarks68 import Landmarks68, Landmarks68Result
from rekface.engine.attributes.mesh import (
    LEFT_EYE_CORNERS,
    RIGHT_EYE_CORNERS,
    FaceMesh,
    MeshResult,
    eye_openness,
    mouth_openness,
)
from rekface.engine.attributes.regions import region_features
from rekface.engine.crops import eye_line_angle, rotate_points
from rekface.engine.embed import Embedder
from rekface.engine.models import (
    AGE_GENDER,
    EXPRESSION,
    FACE_MESH,
    IRIS,
    LANDMARKS_68,
    RECOGNIZER,
    SessionCache,
)
from rekface.engine.packs import BUILTIN_VERSION

if TYPE_CHECKING:
    from rekface.engine.faces import Face

R = TypeVar("R")

# The mesh's second pass on MediaPipe's own tracking crop (the crop the net was trained on): in
# our exploration on the hand labels it separated open from closed mouths slightly better than the
# single pass on the detector's box, and it makes the crop independent of the detector's box.
MESH_REFINE = True


class AttributeNets:
    """The attribute models' runners, each created (and its model loaded) on first use."""

    def __init__(self, sessions: SessionCache) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._runners: dict[str, object] = {}
        self._worker: ThreadPoolExecutor | None = None

    @property
    def worker(self) -> ThreadPoolExecutor:
        """One thread that runs the mesh -> iris chain beside the caller's face-api chain."""
        if self._worker is None:
            with self._lock:
                if self._worker is None:
                    self._worker = ThreadPoolExecutor(1, thread_name_prefix="rekface-mesh")
        return self._worker

    def _get(self, key: str, make: Callable[[], R]) -> R:
        runner = self._runners.get(key)
        if runner is None:
            with self._lock:
                runner = self._runners.get(key)
                if runner is None:
                    runner = make()
                    self._runners[key] = runner
        return runner  # type: ignore[return-value]  # stored under its own key by make()

    @property
    def landmarks68(self) -> Landmarks68:
        return self._get("lm68", lambda: Landmarks68(self._sessions.get(LANDMARKS_68)))

    @property
    def age_gender(self) -> AgeGenderNet:
        return self._get("ag", lambda: AgeGenderNet(self._sessions.get(AGE_GENDER)))

    @property
    def expression(self) -> ExpressionNet:
        return self._get("ex", lambda: ExpressionNet(self._sessions.get(EXPRESSION)))

    @property
    def mesh(self) -> FaceMesh:
        return self._get("mesh", lambda: FaceMesh(self._sessions.get(FACE_MESH)))

    @property
    def iris(self) -> Iris:
        return self._get("iris", lambda: Iris(self._sessions.get(IRIS)))

    @property
    def embedder(self) -> Embedder:
        # The same session as the engine's own embedder (one SessionCache), so a process that
        # also indexes faces loads the recognizer once.
        return self._get("emb", lambda: Embedder(self._sessions.get(RECOGNIZER), flip=True))


def _lip_gap_68(p: np.ndarray) -> float:
    """Inner-lip gap (3 pairs at the centre) / mouth width, on the 68 points."""
    width = float(np.linalg.norm(p[54] - p[48]))
    gap = np.linalg.norm(p[[61, 62, 63]] - p[[67, 66, 65]], axis=1).mean()
    return float(gap / max(width, 1e-6))


class FaceAnalysis:
    def __init__(self, nets: AttributeNets, rgb: np.ndarray, face: Face) -> None:
        self._nets = nets
        self._rgb = rgb
        self.face = face
        self._features: dict[str, float] = {}

    @cached_property
    def roll(self) -> float:
        """The face's in-plane angle (radians) from the detector's eyes: every crop is turned by
        it so the nets see the face upright."""
        return eye_line_angle(self.face.points[0], self.face.points[1])

    @cached_property
    def landmarks68(self) -> Landmarks68Result:
        return self._nets.landmarks68.run(self._rgb, self.face.box, self.roll)

    @cached_property
    def age_gender(self) -> AgeGenderResult:
        return self._nets.age_gender.run(self.landmarks68.aligned)

    @cached_property
    def expression(self) -> np.ndarray:
        return self._nets.expression.run(self.landmarks68.aligned)

    @cached_property
    def mesh(self) -> MeshResult:
        return self._nets.mesh.run(self._rgb, self.face.box, self.roll, refine=MESH_REFINE)

    @cached_property
    def eyes(self) -> tuple[EyeResult, EyeResult]:
        """(image-left eye, image-right eye). The image-right eye is the subject's left, which the
        iris net sees mirrored."""
        m = self.mesh.points[:, :2]
        iris = self._nets.iris
        left = iris.run(
            self._rgb, m[RIGHT_EYE_CORNERS[0]], m[RIGHT_EYE_CORNERS[1]], self.roll, False
        )
        right = iris.run(self._rgb, m[LEFT_EYE_CORNERS[0]], m[LEFT_EYE_CORNERS[1]], self.roll, True)
        return left, right

    @cached_property
    def embedding(self) -> np.ndarray:
        """The face's 128-d identity embedding by pack 1.0, dlib's (the engine's, if it already
        computed it): the attribute probes were fitted on it, whatever the collection's pack."""
        vector = self.face.embeddings.get(BUILTIN_VERSION)
        if vector is None:
            vector = self._nets.embedder.embed(self.face.chip[None])[0]
            self.face.embeddings[BUILTIN_VERSION] = vector
        return vector

    @cached_property
    def regions(self) -> dict[str, float]:
        crop = self.landmarks68.aligned
        return region_features(crop.pixels, crop.points_from_image(self.landmarks68.points))

    def feature(self, name: str) -> float:
        value = self._features.get(name)
        if value is None:
            value = float(FEATURES[name](self))
            self._features[name] = value
        return value

    def features(self, names: tuple[str, ...]) -> dict[str, float]:
        return {name: self.feature(name) for name in names}


def _mesh_upright(a: FaceAnalysis) -> tuple[np.ndarray, float]:
    """Mesh x, y in the frame of its own eye line, and the outer-eye-corner distance."""
    m = a.mesh.points[:, :2]
    angle = eye_line_angle(m[RIGHT_EYE_CORNERS[0]], m[LEFT_EYE_CORNERS[0]])
    p = rotate_points(m, m.mean(0), -angle)
    return p, float(np.linalg.norm(p[RIGHT_EYE_CORNERS[0]] - p[LEFT_EYE_CORNERS[0]]))


def _corner_lift(a: FaceAnalysis) -> float:
    """How far the mouth corners sit above the lips' centre, in eye distances (a smile lifts
    them)."""
    p, iod = _mesh_upright(a)
    centre_y = (p[13, 1] + p[14, 1]) / 2
    return float((centre_y - (p[61, 1] + p[291, 1]) / 2) / max(iod, 1e-6))


def _expr(i: int) -> Callable[[FaceAnalysis], float]:
    return lambda a: float(np.log(max(float(a.expression[i]), 1e-6)))


def _region(name: str) -> Callable[[FaceAnalysis], float]:
    return lambda a: a.regions[name]


FEATURES: dict[str, Callable[[FaceAnalysis], float]] = {
    **{f"expr_{c}": _expr(i) for i, c in enumerate(NET_CLASSES)},
    "lip_gap_68": lambda a: _lip_gap_68(a.landmarks68.points),
    "lip_gap_mesh": lambda a: mouth_openness(a.mesh.points),
    "corner_lift_mesh": _corner_lift,
    "eye_open_mesh": lambda a: float(np.mean(eye_openness(a.mesh.points))),
    "eye_open_mesh_min": lambda a: float(np.min(eye_openness(a.mesh.points))),
    "eye_open_iris": lambda a: float(np.mean([lid_gap(e.contour) for e in a.eyes])),
    "eye_open_iris_min": lambda a: float(np.min([lid_gap(e.contour) for e in a.eyes])),
    "p_female": lambda a: a.age_gender.p_female,
    "mesh_presence": lambda a: a.mesh.presence,
}
# Features read off the mesh (and, for eye_open_iris*, the iris net, which needs the mesh's eye
# corners): the analyzer runs that chain beside the face-api chain when a request needs both.
MESH_FEATURES = frozenset(
    {"lip_gap_mesh", "corner_lift_mesh", "mesh_presence"}
    | {n for n in FEATURES if n.startswith("eye_open_mesh")}
)
IRIS_FEATURES = frozenset(n for n in FEATURES if n.startswith("eye_open_iris"))
# Region statistics (regions.py) under their own names.
for _name in (
    f"{r}_{s}"
    for r in ("eyes", "bridge", "temples", "under", "mustache", "chin", "jaw")
    for s in ("dark", "contrast", "hedges", "vedges", "texture", "red")
):
    FEATURES[_name] = _region(_name)
FEATURES["eyes_asym"] = _region("eyes_asym")


def _embedding(i: int) -> Callable[[FaceAnalysis], float]:
    return lambda a: float(a.embedding[i])


# The identity embedding's components: identity nets also encode glasses, beards and the like.
EMBEDDING_FEATURES = tuple(f"emb_{i:03d}" for i in range(128))
for _i, _name in enumerate(EMBEDDING_FEATURES):
    FEATURES[_name] = _embedding(_i)
