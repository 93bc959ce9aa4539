"""Fit the DetectFaces ALL decisions on hand labels and write
src/rekface/engine/attributes/params.json.

What is fitted (all through the product's own path: DetectFaces' detector boxes, the labelled
face, the attribute stages of ``rekface.engine.attributes``):

- Smile, MouthOpen, EyesOpen, and Eyeglasses, Sunglasses, Beard, Mustache, FaceOccluded: a
  balanced logistic regression on a few named features (``analysis.FEATURES``). The feature set
  and L2 strength are chosen by 5-fold cross-validation grouped by person among the candidates
  below, and the whole procedure is scored by a 10-fold nested, grouped cross-validation on
  ../shared/faces/attributes.tsv. An attribute no shipped net predicts (glasses, beard, mustache,
  occlusion) is written only if that nested figure reaches ``SHIP_BAR`` (balanced accuracy 90 %):
  otherwise it is left out and DetectFaces never returns it.
- Gender: the P(female) threshold with the best balanced accuracy, on the photos of people whose
  gender is clear from the name (gender_by_name.tsv).
- AgeRange: bias and a half-width that grows with the predicted age, on LFW photos of people with
  known birth years (tools/attributes/birth_years.tsv): the narrowest linear width that holds the
  true age in ``AGE_COVERAGE`` of the photos.
- EyeDirection: the pupils' resting offset (median over the labelled photos with open eyes) and
  the median left/right disagreement (Confidence 50 there); written when our gaze labels
  (gaze_labels.tsv) exist, against which ``benchmarks/attributes_accuracy.py`` measures it.

usage: python tools/attributes/fit_attributes.py [--check]   (--check: print, don't write)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.attribute_labels import (  # noqa: E402
    analyses,
    attribute_photos,
    balanced_accuracy,
    birth_years,
    fit,
    fit_temperature,
    gender_labels,
    group_folds,
    lfw_photo,
    nested_cv,
    select,
)
from benchmarks.shared_faces import identity_photos  # noqa: E402
from rekface.engine.attributes.analysis import EMBEDDING_FEATURES  # noqa: E402
from rekface.engine.attributes.analyzer import PARAMS_FILE, eye_offsets  # noqa: E402
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.settings import Settings  # noqa: E402

SHIP_BAR = 0.90
# Attributes with a net behind them ship whatever their figure (the README reports it).
MODEL_BACKED = ("Smile", "MouthOpen", "EyesOpen")
AGE_COVERAGE = 0.80


def _region_set(
    *regions: str,
    stats: tuple[str, ...] = ("dark", "contrast", "hedges", "vedges", "texture", "red"),
) -> tuple[str, ...]:
    return tuple(f"{r}_{s}" for r in regions for s in stats)


EXPR = tuple(
    f"expr_{c}" for c in ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
)
CANDIDATES: dict[str, list[tuple[str, ...]]] = {
    "Smile": [
        ("expr_happy",),
        EXPR,
        ("expr_happy", "corner_lift_mesh"),
        (*EXPR, "corner_lift_mesh", "lip_gap_68"),
    ],
    "MouthOpen": [
        ("lip_gap_68",),
        ("lip_gap_mesh",),
        ("lip_gap_68", "lip_gap_mesh"),
        ("lip_gap_68", "lip_gap_mesh", "expr_happy", "expr_surprised"),
    ],
    "EyesOpen": [
        ("eye_open_iris",),
        ("eye_open_mesh",),
        ("eye_open_iris", "eye_open_mesh"),
        ("eye_open_iris", "eye_open_iris_min", "eye_open_mesh", "eye_open_mesh_min"),
    ],
    "Eyeglasses": [
        _region_set("bridge", "temples", "under"),
        _region_set("eyes", "bridge", "temples", "under"),
        (*_region_set("eyes", "bridge", "temples", "under"), *EMBEDDING_FEATURES),
    ],
    "Sunglasses": [
        _region_set("eyes", stats=("dark", "contrast", "red")),
        (*_region_set("eyes"), "eyes_asym"),
        _region_set("eyes", "bridge", "under"),
    ],
    "Beard": [
        _region_set("chin", "jaw"),
        _region_set("chin", "jaw", "mustache"),
        EMBEDDING_FEATURES,
        (*_region_set("chin", "jaw", "mustache"), *EMBEDDING_FEATURES),
    ],
    "Mustache": [
        _region_set("mustache"),
        _region_set("mustache", "chin"),
        EMBEDDING_FEATURES,
        (*_region_set("mustache", "chin"), *EMBEDDING_FEATURES),
    ],
    "FaceOccluded": [
        ("mesh_presence",),
        ("mesh_presence", *_region_set("mustache", "chin", "eyes", stats=("dark", "contrast"))),
    ],
}


def collect(engine: FaceEngine, files: list[str], names: tuple[str, ...]) -> dict[str, dict]:
    out = {}
    for rel, a in analyses(engine, files):
        row = {n: a.feature(n) for n in names}
        out[rel] = row
    return out


def fit_binary(rows: list, values: dict[str, dict]) -> tuple[dict, dict]:
    """-> (params of the attributes that ship, report of every attribute)."""
    params, report = {}, {}
    for member, candidates in CANDIDATES.items():
        use = [r for r in rows if member in r.labels and r.file in values]
        y = np.array([r.labels[member] for r in use], float)
        groups = [r.person for r in use]

        def columns(c: tuple[str, ...], use: list = use) -> np.ndarray:
            return np.array([[values[r.file][n] for n in c] for r in use], float)

        oof = nested_cv(columns, y, groups, candidates)
        ba = balanced_accuracy(y, oof >= 0)
        rnd = np.array([r.random for r in use])
        cand, l2, _ = select(columns, y, groups, candidates)
        final = fit(columns(cand), y, cand, l2)
        temperature = fit_temperature(oof, y)
        ships = member in MODEL_BACKED or ba >= SHIP_BAR
        report[member] = {
            "nested_cv_balanced_accuracy": round(ba, 4),
            "nested_cv_balanced_accuracy_random_rows": round(
                balanced_accuracy(y[rnd], oof[rnd] >= 0), 4
            ),
            "n_positive": int(y.sum()),
            "n_negative": int((1 - y).sum()),
            "features": list(cand),
            "l2": l2,
            "ships": ships,
        }
        print(
            f"{member:13s} nested CV BA {ba:.3f} (random rows "
            f"{report[member]['nested_cv_balanced_accuracy_random_rows']:.3f}) "
            f"n={len(y)} pos={int(y.sum())}  chosen {len(cand)} features, l2={l2}"
            f"  -> {'SHIP' if ships else 'left out'}"
        )
        if ships:
            params[member] = final.params(temperature)
    return params, report


def fit_gender(engine: FaceEngine) -> tuple[dict, dict]:
    labels = gender_labels()
    files = [rel for person, rel in identity_photos() if person in labels]
    found = {rel: a.age_gender.p_female for rel, a in analyses(engine, files)}
    rel = list(found)
    p = np.array([found[r] for r in rel])
    y = np.array([labels[r.split("/")[1]] == "Female" for r in rel])
    groups = [r.split("/")[1] for r in rel]
    grid = np.linspace(0.05, 0.95, 91)

    def best(mask: np.ndarray) -> float:
        scores = [balanced_accuracy(y[mask], p[mask] >= t) for t in grid]
        return float(grid[int(np.argmax(scores))])

    folds = group_folds(groups, 10)
    pred = np.zeros(len(y), bool)
    for f in range(10):
        pred[folds == f] = p[folds == f] >= best(folds != f)
    threshold = best(np.ones(len(y), bool))
    acc = float((pred == y).mean())
    print(
        f"Gender        threshold {threshold:.2f}; 10-fold CV accuracy {acc:.4f} on {len(y)} "
        f"photos ({int(y.sum())} of women), balanced {balanced_accuracy(y, pred):.4f}"
    )
    return {"threshold": round(threshold, 4)}, {
        "cv_accuracy": round(acc, 4),
        "n": len(y),
        "n_female": int(y.sum()),
    }


def _age_width(age: np.ndarray, err: np.ndarray, coverage: float) -> tuple[float, float, float]:
    """(bias, base, slope): the narrowest mean range with ``coverage`` of |err - bias| inside
    base + slope * age, over a grid of slopes."""
    bias = float(np.median(err))
    best = (np.inf, 0.0, 0.0)
    for slope in np.linspace(0.0, 0.3, 61):
        # Smallest base such that coverage holds: a quantile of the residual after the slope.
        need = np.abs(err - bias) - slope * np.maximum(age, 0)
        base = float(np.quantile(need, coverage))
        base = max(base, 1.0)
        width = float(np.mean(2 * (base + slope * np.maximum(age, 0))))
        if width < best[0]:
            best = (width, base, float(slope))
    return bias, best[1], best[2]


def fit_age(engine: FaceEngine) -> tuple[dict, dict]:
    years = birth_years()
    files = [rel for person, rel in identity_photos() if person in years and lfw_photo(rel)]
    found = {rel: a.age_gender.age for rel, a in analyses(engine, files)}
    rel = list(found)
    age = np.array([found[r] for r in rel])
    true = np.array([2003 - years[r.split("/")[1]] for r in rel], float)
    err = true - age
    groups = [r.split("/")[1] for r in rel]
    folds = group_folds(groups, 10)
    inside = np.zeros(len(rel), bool)
    widths = np.zeros(len(rel))
    for f in range(10):
        bias, base, slope = _age_width(age[folds != f], err[folds != f], AGE_COVERAGE)
        t = folds == f
        half = base + slope * np.maximum(age[t], 0)
        low = np.floor(age[t] + bias - half)
        high = np.ceil(age[t] + bias + half)
        inside[t] = (true[t] >= low) & (true[t] <= high)
        widths[t] = high - low
    bias, base, slope = _age_width(age, err, AGE_COVERAGE)
    mae = float(np.abs(err).mean())
    print(
        f"AgeRange      age MAE {mae:.1f} y on {len(rel)} photos of {len(set(groups))} people; "
        f"range = age {bias:+.1f} +- ({base:.1f} + {slope:.2f} * age); 10-fold CV coverage "
        f"{inside.mean():.3f}, mean width {widths.mean():.1f} y"
    )
    return {"bias": round(bias, 3), "base": round(base, 3), "slope": round(slope, 4)}, {
        "mae_years": round(mae, 2),
        "cv_coverage": round(float(inside.mean()), 4),
        "cv_mean_width": round(float(widths.mean()), 2),
        "n": len(rel),
        "people": len(set(groups)),
    }


def fit_gaze(engine: FaceEngine, rows: list) -> dict:
    """Resting pupil offsets: the median over labelled photos with open eyes (most LFW subjects
    look at the camera); spread: the median left/right disagreement in degrees."""
    files = [r.file for r in rows if r.labels.get("EyesOpen") == 1]
    offsets = [eye_offsets(a) for _, a in analyses(engine, files)]
    h = np.array([[o[0] for o in pair] for pair in offsets])
    v = np.array([[o[1] for o in pair] for pair in offsets])
    zero_h, zero_v = float(np.median(h)), float(np.median(v))
    from rekface.engine.attributes.gaze import offset_angle

    dis = [
        np.hypot(
            offset_angle(a[0] - zero_h) - offset_angle(a[1] - zero_h),
            offset_angle(b[0] - zero_v) - offset_angle(b[1] - zero_v),
        )
        for a, b in zip(h, v, strict=True)
    ]
    spread = float(np.median(dis))
    print(
        f"EyeDirection  zero offsets h {zero_h:+.3f} v {zero_v:+.3f}; "
        f"median disagreement {spread:.1f} deg"
    )
    return {"zero_h": round(zero_h, 4), "zero_v": round(zero_v, 4), "spread": round(spread, 3)}


def main() -> None:
    check = "--check" in sys.argv
    start = time.time()
    engine = FaceEngine(Settings())
    rows = attribute_photos()
    names = tuple(sorted({n for cs in CANDIDATES.values() for c in cs for n in c}))
    values = collect(engine, [r.file for r in rows], names)
    print(f"features of {len(values)}/{len(rows)} labelled photos ({time.time() - start:.0f} s)")
    classifiers, report = fit_binary(rows, values)
    gender, gender_report = fit_gender(engine)
    age, age_report = fit_age(engine)
    out = {
        "classifiers": classifiers,
        "gender": gender,
        "age_range": age,
        "measured": {"binary": report, "gender": gender_report, "age_range": age_report},
    }
    gaze_labels = Path(__file__).with_name("gaze_labels.tsv")
    if gaze_labels.is_file():
        out["eye_direction"] = fit_gaze(engine, rows)
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    if check:
        print(text)
    else:
        PARAMS_FILE.write_text(text)
        print(f"wrote {PARAMS_FILE.relative_to(REPO)} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
