"""Embeddings of every labelled face of ../shared/faces (identities + singletons), cached in a tmp
dir, for the Similarity fit (``fit_similarity.py``) and the recognizer benchmark
(``benchmarks/recognizers.py``).

The face of each photo is the labelled one (LFW-style crops centre the named person: the face
nearest the centre), found by the product's RetinaFace detector; its 5 landmarks are cached once and
every recognizer aligns its own chip from them, so all recognizers see the same faces. Nothing is
written into the repository: the cache lives in ``$REKFACE_EMBED_CACHE`` or
``<tmp>/rekface-embeddings`` and is keyed by the recognizer's sha256.

Recognizers are packs (``rekface.engine.packs``), embedded by the same calls ``FaceEngine`` makes
for a pack: the built-in 1.0 (dlib), or packs made in a tmp dir (``make_pack``) for the reference
MobileFaceNet and the int8 candidate.
"""

from __future__ import annotations

import hashlib
import json
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
from rekface.engine.align import face_chip  # noqa: E402
from rekface.engine.embed import Embedder  # noqa: E402
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.engine.packs import (  # noqa: E402
    Pack,
    PackRegistry,
    check_session,
    read_model,
    read_pack,
)
from rekface.settings import Settings  # noqa: E402

CACHE = Path(
    os.environ.get("REKFACE_EMBED_CACHE", Path(tempfile.gettempdir()) / "rekface-embeddings")
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
    path = CACHE / "landmarks.npz"  # the detector is pinned by sha256: its output is stable
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


def session(data: bytes, threads: int = 0) -> ort.InferenceSession:
    """A session configured as the product's ``SessionCache`` configures its own; ``threads`` 1
    makes process CPU time the cost of one face."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class PackRecognizer:
    """A recognizer pack through the product's own code: ``packs.read_model`` (sha256 checked),
    ``packs.check_session`` (shapes), the pack's alignment by ``align.face_chip`` and its input
    spec, flip and output by ``embed.Embedder``, as ``FaceEngine`` loads a pack."""

    def __init__(self, name: str, pack: Pack, settings: Settings, threads: int = 0) -> None:
        self.name, self.pack = name, pack
        sess = session(read_model(pack, settings), threads)
        check_session(pack, sess)
        self._embedder = Embedder(
            sess, flip=pack.flip, spec=pack.input, output=pack.output_name, dims=pack.dims
        )

    def chip(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        return face_chip(rgb, points, self.pack.alignment_size, self.pack.template)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        return self._embedder.embed(chips)


def builtin_pack(version: str = "1.0") -> Pack:
    return PackRegistry(Settings()).get(version)


def make_pack(folder: Path, meta: dict, model: Path) -> Pack:
    """A pack folder in a tmp dir: ``pack.json`` from ``meta`` (sha256 filled in) and a symlink to
    the model, which stays where it is (reference models never leave ../shared/models)."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "model.onnx"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(model.resolve())
    meta = {**meta, "onnx": "model.onnx", "sha256": sha256(model)}
    (folder / "pack.json").write_text(json.dumps(meta, indent=1) + "\n")
    return read_pack(folder)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def embeddings(
    rec: PackRecognizer, ph: Photos, progress: Callable[[str], None] = print
) -> tuple[np.ndarray, float]:
    """[N, D] unit embeddings of the labelled faces (cached per model sha256) and the CPU ms per
    face of chip + embedding measured while computing them (nan when read from the cache)."""
    path = CACHE / f"emb-{rec.name}-{rec.pack.sha256[:16]}.npy"
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
