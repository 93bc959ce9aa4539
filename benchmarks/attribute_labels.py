"""Hand labels for the DetectFaces ALL attributes, the product's measurements on the labelled faces,
and the small fitting kit (grouped cross-validation, balanced logistic regression, metrics) shared
by ``tools/attributes/fit_attributes.py`` (which writes the shipped parameters) and
``benchmarks/attributes_accuracy.py`` (which measures them).

Labels: ../shared/faces/attributes.tsv (one annotator, see its README: ``?`` = cannot tell, left
out), ../shared/faces/gender_by_name.tsv, and two files of ours in tools/attributes/:
birth_years.tsv (for AgeRange) and gaze_labels.tsv (for EyeDirection).

Every measurement goes through the product's own path: ``FaceEngine.detect`` (DetectFaces'
detector boxes), the labelled (central) face, then the attribute stages of ``FaceAnalysis``.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.shared_faces import SHARED_FACES, labelled_face, load
from rekface.engine.attributes.analysis import FaceAnalysis
from rekface.engine.faces import FaceEngine

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools" / "attributes"
BINARY_COLUMNS = {
    "Eyeglasses": "eyeglasses",
    "Sunglasses": "sunglasses",
    "Beard": "beard",
    "Mustache": "mustache",
    "EyesOpen": "eyes_open",
    "MouthOpen": "mouth_open",
    "Smile": "smile",
    "FaceOccluded": "occluded",
}


@dataclass(frozen=True)
class LabelledPhoto:
    file: str
    person: str
    random: bool  # one photo drawn per person (use for rates); else "enriched" with rare positives
    labels: dict[str, int]  # FaceDetail member -> 1 / 0; members labelled "?" are absent
    note: str

    @property
    def downcast(self) -> bool:
        """Eyes labelled closed because the gaze is down (lids over the iris), not a blink."""
        n = self.note.lower()
        return "down" in n


def attribute_photos() -> list[LabelledPhoto]:
    out = []
    with (SHARED_FACES / "attributes.tsv").open() as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            labels = {m: int(r[c]) for m, c in BINARY_COLUMNS.items() if r[c] in ("0", "1")}
            out.append(
                LabelledPhoto(
                    r["file"], r["file"].split("/")[1], r["source"] == "random", labels, r["unsure"]
                )
            )
    return out


def gender_labels() -> dict[str, str]:
    """Person -> "Male" / "Female", for the people whose gender is clear from the name."""
    with (SHARED_FACES / "gender_by_name.tsv").open() as fh:
        return {r["name"]: r["gender"] for r in csv.DictReader(fh, delimiter="\t")}


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def birth_years() -> dict[str, int]:
    return {r["name"]: int(r["birth_year"]) for r in _tsv(TOOLS / "birth_years.tsv")}


def lfw_photo(rel: str) -> bool:
    """Whether a photo is an LFW news photo (2002-2004), whose date birth years can age."""
    return _sources().get(rel, "").startswith("umass-vis-lfw/")


_SOURCES: dict[str, str] = {}


def _sources() -> dict[str, str]:
    if not _SOURCES:
        with (SHARED_FACES / "SOURCES.tsv").open() as fh:
            _SOURCES.update({r["file"]: r["source"] for r in csv.DictReader(fh, delimiter="\t")})
    return _SOURCES


def analyses(engine: FaceEngine, files: Iterable[str]) -> Iterable[tuple[str, FaceAnalysis]]:
    """(file, analysis of its labelled face) through DetectFaces' detector; photos where no face
    is found are skipped (the caller counts them)."""
    analyzer = engine.attributes
    for rel in files:
        image = load(rel)
        face = labelled_face(engine.detect(image), image)
        if face is not None:
            yield rel, analyzer.analysis(image.rgb, face)


# ---------------------------------------------------------------- fitting kit (numpy only)


def group_folds(groups: Sequence[str], k: int = 10, seed: int = 0) -> np.ndarray:
    """Fold of each row, all rows of one group (person) in the same fold."""
    names = sorted(set(groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(names)
    fold = {g: i % k for i, g in enumerate(names)}
    return np.array([fold[g] for g in groups])


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """L2-regularised logistic regression with balanced class weights (Newton's method);
    returns [weights..., bias] for standardised x."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    pos = max(float(y.mean()), 1e-9)
    w = np.where(y == 1, 0.5 / pos, 0.5 / max(1.0 - pos, 1e-9))
    reg = np.eye(d + 1) * l2
    reg[-1, -1] = 0.0
    beta = np.zeros(d + 1)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ beta, -30, 30)))
        grad = xb.T @ (w * (p - y)) + reg @ beta
        hess = (xb * (w * p * (1 - p))[:, None]).T @ xb + reg + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return beta


@dataclass(frozen=True)
class Fitted:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    l2: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    def params(self, temperature: float) -> dict:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "weights": [round(float(v), 6) for v in self.weights],
            "bias": round(float(self.bias), 6),
            "temperature": round(float(temperature), 4),
        }


def fit(x: np.ndarray, y: np.ndarray, features: Sequence[str], l2: float) -> Fitted:
    mean = x.mean(0)
    scale = x.std(0) + 1e-9
    beta = fit_logistic((x - mean) / scale, y, l2)
    return Fitted(tuple(features), mean, scale, beta[:-1], float(beta[-1]), l2)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    y = np.asarray(y).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float((pred[y].mean() + (~pred[~y]).mean()) / 2)


Candidate = tuple[str, ...]
Columns = Callable[[Candidate], np.ndarray]


def cv_logits(
    columns: Columns, y: np.ndarray, groups: Sequence[str], candidate: Candidate, l2: float, k: int
) -> np.ndarray:
    x = columns(candidate)
    folds = group_folds(groups, k)
    out = np.zeros(len(y))
    for f in range(k):
        test = folds == f
        out[test] = fit(x[~test], y[~test], candidate, l2).logits(x[test])
    return out


L2_GRID = (0.1, 1.0, 10.0, 100.0)


def select(
    columns: Columns,
    y: np.ndarray,
    groups: Sequence[str],
    candidates: Sequence[Candidate],
    k: int = 5,
) -> tuple[Candidate, float, float]:
    """The (feature set, L2) with the best cross-validated balanced accuracy; and that figure."""
    best = (candidates[0], L2_GRID[0], -1.0)
    for cand in candidates:
        for l2 in L2_GRID:
            ba = balanced_accuracy(y, cv_logits(columns, y, groups, cand, l2, k) >= 0)
            if ba > best[2] + 1e-12:
                best = (cand, l2, ba)
    return best


def nested_cv(
    columns: Columns,
    y: np.ndarray,
    groups: Sequence[str],
    candidates: Sequence[Candidate],
    k: int = 10,
) -> np.ndarray:
    """Out-of-fold logits of the whole procedure (choose features and L2 by inner CV, fit, so
    threshold included), folds grouped by person: an honest estimate of the shipped method."""
    groups = list(groups)
    folds = group_folds(groups, k)
    out = np.zeros(len(y))
    for f in range(k):
        train = np.nonzero(folds != f)[0]
        test = folds == f

        def sub(c: Candidate, rows: np.ndarray = train) -> np.ndarray:
            return columns(c)[rows]

        cand, l2, _ = select(sub, y[train], [groups[i] for i in train], candidates)
        out[test] = fit(columns(cand)[train], y[train], cand, l2).logits(columns(cand)[test])
    return out


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Scale t so that sigmoid(t * logit) is calibrated: the balanced log-loss of out-of-fold
    logits."""
    pos = max(float(y.mean()), 1e-9)
    w = np.where(y == 1, 0.5 / pos, 0.5 / max(1 - pos, 1e-9))
    best = (math.inf, 1.0)
    for t in np.exp(np.linspace(np.log(0.05), np.log(5.0), 200)):
        z = np.clip(t * logits, -30, 30)
        loss = float(np.sum(w * (np.logaddexp(0, z) - y * z)))
        if loss < best[0]:
            best = (loss, float(t))
    return best[1]


def confidence_buckets(
    confidence: np.ndarray, correct: np.ndarray, edges: Sequence[float] = (50, 70, 90, 100.01)
) -> list[tuple[str, int, float]]:
    """(bucket, n, share right) for Confidence buckets: a higher bucket should be right more
    often."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        m = (confidence >= lo) & (confidence < hi)
        out.append(
            (
                f"{lo:g}-{min(hi, 100):g}",
                int(m.sum()),
                float(correct[m].mean()) if m.any() else float("nan"),
            )
        )
    return out
