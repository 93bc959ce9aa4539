"""Embeddings of every labelled face of ../shared/faces (identities + singletons), cached in a tmp
dir, for the Similarity fit (``fit_similarity.py``) and the recognizer benchmark
(``benchmarks/recognizers.py``).

The face of each photo is the labelled one (LFW-style crops centre the named person: the face
nearest the centre), found by the product's RetinaFace detector; its 5 landmarks are cached once and
every recognizer aligns its own chip from them, so all recognizers see the same faces. Nothing is
written into the repository: the cache lives in ``$REKFACE_EMBED_CACHE`` or
``<tmp>/rekface-embeddings`` and is keyed by the recognizer's sha256.

Recognizers:
- ``dlib``: the product's engine path (``face_chip`` 150 px + ``Embedder`` with flip averaging),
  on any dlib-contract ONNX (the shipped fp32 model or an int8 candidate built from it);
- ``arcface112``: a 112 px ArcFace-template recognizer with (x - 127.5) / 128 RGB NCHW input, flip
  averaged and L2-normalised, as the reference MobileFaceNet pack declares.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import SHARED_FACES, labelled_face, load  # noqa: E402
from rekface.engine.align import face_chip, similarity, warp_affine  # noqa: E402
from rekface.engine.embed import Embedder, normalize  # noqa: E402
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.settings import Settings  # noqa: E402

CACHE = Path(
    os.environ.get("REKFACE_EMBED_CACHE", Path(tempfile.gettempdir()) / "rekface-embeddings")
)
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float64,
)
# The deepface_person_* folders are probably these LFW people (../shared/faces/README.md): they get
# the LFW person's id, so they are never paired as "different" (their own pairs count as same).
ALIASES = {
    "Jennifer_Aniston",
    "Matt_Damon",
    "Leonardo_DiCaprio",
    "George_Clooney",
}


@dataclass(frozen=True)
class Photos:
    """The labelled face of every photo: file, person name, person id, 5 landmarks."""

    files: list[str]
    names: list[str]  # folder name ("singletons/<Name>" people are each their own person)
    person: np.ndarray  # [N] int person id (see person_ids)
    points: np.ndarray  # [N, 5, 2]
    singleton: np.ndarray  # [N] bool


def _photo_list() -> list[tuple[str, str, bool]]:
    out = []
    for sub, single in (("identities", False), ("singletons", True)):
        root = SHARED_FACES / sub
        for name in sorted(os.listdir(root)):
            for f in sorted(os.listdir(root / name), key=lambda n: (len(n), n)):
                out.append((f"{sub}/{name}/{f}", name, single))
    return out


def person_ids(names: list[str], singleton: np.ndarray) -> np.ndarray:
    """One id per person; each singleton its own. The aliased deepface folders are not merged with
    their namesakes (whether they are the same person is only probable): the fit is told never to
    pair them as different (``never_different``)."""
    keys = [("s:" if s else "i:") + n for n, s in zip(names, singleton, strict=True)]
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([index[k] for k in keys], np.int64)


def never_different(names: list[str], person: np.ndarray) -> list[tuple[int, int]]:
    """Person-id pairs that must never count as different people: every deepface_person_* folder
    against each of the four LFW names it may alias (which deepface folder is whom is unknown)."""
    ids = {n: int(p) for n, p in zip(names, person, strict=True)}
    deep = sorted({ids[n] for n in ids if n.startswith("deepface_person_")})
    lfw = sorted({ids[n] for n in ids if n in ALIASES})
    return [(a, b) for a in deep for b in lfw]


def photos(progress: Callable[[str], None] = print) -> Photos:
    """Detect the labelled face of every photo once (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "landmarks.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        files, names = list(z["files"]), list(z["names"])
        return Photos(files, names, person_ids(names, z["singleton"]), z["points"], z["singleton"])
    engine = FaceEngine(Settings())
    files, names, points, single = [], [], [], []
    listing = _photo_list()
    t0 = time.time()
    for i, (rel, name, is_single) in enumerate(listing):
        image = load(rel)
        face = labelled_face(engine.detect(image), image)
        if face is None:
            progress(f"no face in {rel}")
            continue
        files.append(rel)
        names.append(name)
        points.append(face.points)
        single.append(is_single)
        if i % 500 == 0:
            progress(f"landmarks {i}/{len(listing)} ({time.time() - t0:.0f} s)")
    pts, sg = np.array(points, np.float64), np.array(single, bool)
    np.savez(path, files=np.array(files), names=np.array(names), points=pts, singleton=sg)
    return Photos(files, names, person_ids(names, sg), pts, sg)


def session(path: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Recognizer:
    """One recognizer: aligned chip from 5 landmarks -> unit embedding (flip averaged)."""

    name: str
    path: Path

    def chip(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, chips: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class DlibRecognizer(Recognizer):
    """The product's path: ``face_chip`` + ``Embedder(flip=True)`` on a dlib-contract graph."""

    def __init__(self, name: str, path: Path, threads: int = 0) -> None:
        self.name, self.path = name, path
        self._embedder = Embedder(session(path, threads), flip=True)

    def chip(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        return face_chip(rgb, points)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        return self._embedder.embed(chips)


class ArcFace112Recognizer(Recognizer):
    """ArcFace-template 112 px chips, (x - 127.5) / 128 RGB NCHW, flip averaged, L2-normalised."""

    def __init__(self, name: str, path: Path, threads: int = 0) -> None:
        self.name, self.path = name, path
        self._session = session(path, threads)
        self._input = self._session.get_inputs()[0].name

    def chip(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        m = similarity(np.asarray(points, np.float64).reshape(5, 2), ARCFACE_112)
        return warp_affine(rgb, m, 112)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        x = (np.asarray(chips, np.float32) - 127.5) / 128.0
        x = np.concatenate([x, x[:, :, ::-1]]).transpose(0, 3, 1, 2)
        out = np.concatenate(
            [
                self._session.run(None, {self._input: np.ascontiguousarray(x[i : i + 16])})[0]
                for i in range(0, len(x), 16)
            ]
        )
        n = len(chips)
        return normalize(normalize(out[:n]) + normalize(out[n:]))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def embeddings(
    rec: Recognizer, ph: Photos, progress: Callable[[str], None] = print
) -> tuple[np.ndarray, float]:
    """[N, D] unit embeddings of the labelled faces (cached per model sha256) and the CPU ms per
    face of chip + embedding measured while computing them (nan when read from the cache)."""
    path = CACHE / f"emb-{rec.name}-{sha256(rec.path)[:16]}.npy"
    if path.exists():
        return np.load(path), float("nan")
    out, cpu, t0 = [], 0.0, time.time()
    for i, (rel, pts) in enumerate(zip(ph.files, ph.points, strict=True)):
        rgb = load(rel).rgb
        c0 = time.process_time()
        out.append(rec.embed(rec.chip(rgb, pts)[None])[0])
        cpu += time.process_time() - c0
        if i % 500 == 0:
            progress(f"{rec.name}: {i}/{len(ph.files)} ({time.time() - t0:.0f} s)")
    emb = np.stack(out).astype(np.float32)
    np.save(path, emb)
    return emb, cpu / len(ph.files) * 1000.0
