"""DetectFaces' optional attributes (AgeRange, Smile, Gender, ... and all 30 landmark types) for
the faces the detector found, computed only for the members a request names.

What each member is, and how well it measures against hand labels, is in the README's attribute
table (``benchmarks/attributes_accuracy.py`` prints it). Fitted numbers live in ``params.json``,
written by ``tools/attributes/fit_attributes.py``. A member with no entry there (no method reached
the accuracy bar) is never returned: no constant, no guess.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rekface.engine.attributes.age_gender import AgeRangeModel, gender
from rekface.engine.attributes.analysis import (
    IRIS_FEATURES,
    MESH_FEATURES,
    AttributeNets,
    FaceAnalysis,
)
from rekface.engine.attributes.expression import emotions
from rekface.engine.attributes.gaze import GazeModel, eye_direction, eye_offset
from rekface.engine.attributes.headpose import mesh_pose
from rekface.engine.attributes.landmarks68 import rekognition_landmarks
from rekface.engine.attributes.linear import LinearClassifier
from rekface.engine.models import SessionCache

if TYPE_CHECKING:
    from rekface.engine.faces import Face

PARAMS_FILE = Path(__file__).with_name("params.json")

# FaceDetail members beyond the defaults that this module can produce, given fitted parameters.
BINARY_MEMBERS = (
    "Beard",
    "Eyeglasses",
    "EyesOpen",
    "FaceOccluded",
    "MouthOpen",
    "Mustache",
    "Smile",
    "Sunglasses",
)


@dataclass(frozen=True)
class AttributeParams:
    classifiers: Mapping[str, LinearClassifier]
    gender_threshold: float | None
    age_range: AgeRangeModel | None
    gaze: GazeModel | None

    @classmethod
    def from_dict(cls, p: Mapping[str, Any]) -> AttributeParams:
        return cls(
            classifiers={
                name: LinearClassifier.from_params(c)
                for name, c in p.get("classifiers", {}).items()
            },
            gender_threshold=p.get("gender", {}).get("threshold"),
            age_range=AgeRangeModel.from_params(p["age_range"]) if "age_range" in p else None,
            gaze=GazeModel.from_params(p["eye_direction"]) if "eye_direction" in p else None,
        )

    def members(self) -> frozenset[str]:
        """The optional FaceDetail members these parameters let the analyzer compute."""
        out = set(self.classifiers)
        out.add("Emotions")  # the expression net's own probabilities: nothing fitted
        if self.gender_threshold is not None:
            out.add("Gender")
        if self.age_range is not None:
            out.add("AgeRange")
        if self.gaze is not None:
            out.add("EyeDirection")
        return frozenset(out)


@functools.lru_cache(maxsize=1)
def load_params(path: Path = PARAMS_FILE) -> AttributeParams:
    return AttributeParams.from_dict(json.loads(path.read_text()))


class AttributeAnalyzer:
    def __init__(self, sessions: SessionCache, params: AttributeParams | None = None) -> None:
        self._nets = AttributeNets(sessions)
        self._params = params

    @property
    def params(self) -> AttributeParams:
        if self._params is None:
            self._params = load_params()
        return self._params

    def analysis(self, rgb: np.ndarray, face: Face) -> FaceAnalysis:
        return FaceAnalysis(self._nets, rgb, face)

    def analyze(
        self,
        rgb: np.ndarray,
        faces: Iterable[Face],
        members: Iterable[str],
        landmarks: bool = False,
        pose: bool = False,
    ) -> None:
        """Fill ``face.attributes`` with the requested members that can be computed; with
        ``landmarks``, ``attributes["Landmarks"]`` (every landmark type -> (x, y) pixels); with
        ``pose``, ``attributes["Pose"]`` (the mesh's 3D head pose)."""
        wanted = sorted(set(members) & self.params.members())
        if not (wanted or landmarks or pose):
            return
        chain = self._mesh_chain(wanted, landmarks, pose)
        for face in faces:
            a = self.analysis(rgb, face)
            pending = None
            if chain is not None:
                # The mesh -> iris chain runs in a worker thread while this thread runs the
                # face-api nets: with 2 cores the two chains take the time of the longer one
                # (onnxruntime releases the GIL; the stages share nothing but ``roll``).
                _ = a.roll
                pending = self._nets.worker.submit(chain, a)
            try:
                # Members of the face-api chain first, so this thread never waits on (or
                # duplicates) the mesh the worker is computing.
                for member in sorted(wanted, key=self._needs_mesh):
                    if pending is not None and self._needs_mesh(member):
                        pending.result()
                    face.attributes[member] = self._member(member, a)
            finally:
                if pending is not None:
                    pending.result()
            if landmarks:
                face.attributes["Landmarks"] = all_landmarks(a)
            if pose:
                face.attributes["Pose"] = mesh_pose(a.mesh.points)

    def _needs_mesh(self, member: str) -> bool:
        if member == "EyeDirection":
            return True
        classifier = self.params.classifiers.get(member)
        return classifier is not None and bool(
            set(classifier.features) & (MESH_FEATURES | IRIS_FEATURES)
        )

    def _mesh_chain(
        self, wanted: list[str], landmarks: bool, pose: bool
    ) -> Callable[[FaceAnalysis], object] | None:
        """What of the mesh -> iris chain this request needs (to run it ahead), or None."""
        p = self.params
        names = {n for m in wanted if m in p.classifiers for n in p.classifiers[m].features}
        eyes = landmarks or "EyeDirection" in wanted or bool(names & IRIS_FEATURES)
        if eyes:
            return lambda a: a.eyes
        if pose or names & MESH_FEATURES:
            return lambda a: a.mesh
        return None

    def _member(self, member: str, a: FaceAnalysis) -> Any:
        p = self.params
        if member == "Emotions":
            return emotions(a.expression)
        if member == "Gender" and p.gender_threshold is not None:
            return gender(a.age_gender.p_female, p.gender_threshold)
        if member == "AgeRange" and p.age_range is not None:
            return p.age_range.range(a.age_gender.age)
        if member == "EyeDirection" and p.gaze is not None:
            return eye_direction(eye_offsets(a), p.gaze)
        classifier = p.classifiers[member]
        return classifier.decide(a.features(classifier.features))


def eye_offsets(a: FaceAnalysis) -> list[tuple[float, float]]:
    """Each eye's pupil offset (``gaze.eye_offset``), between the iris net's own eye corners."""
    return [eye_offset(e.pupil, e.contour[0], e.contour[8], a.roll) for e in a.eyes]


def all_landmarks(a: FaceAnalysis) -> dict[str, tuple[float, float]]:
    """The 25 landmark types beyond the detector's 5: 23 from the 68 points, the pupils from the
    iris net (leftPupil = the image-left eye's, as for eyeLeft)."""
    out = rekognition_landmarks(a.landmarks68.points)
    left, right = a.eyes
    out["leftPupil"] = (float(left.pupil[0]), float(left.pupil[1]))
    out["rightPupil"] = (float(right.pupil[0]), float(right.pupil[1]))
    return out
