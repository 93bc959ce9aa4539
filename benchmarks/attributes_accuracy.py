"""Accuracy of the DetectFaces ALL attributes against hand labels (issue 12).

Two kinds of figure, both printed:
- "CV": out-of-fold predictions of the whole fitting procedure of tools/attributes/fit_attributes.py
  (feature set, L2 and threshold chosen on the training folds only; 10 folds grouped by person).
  These are the honest estimates: precision, recall and balanced accuracy on the ``random`` rows
  of ../shared/faces/attributes.tsv (one photo per person), recall of the rare class on all rows.
- "shipped": the product itself, DetectFaces through ``operations.run`` with the shipped
  params.json, on the same photos. Those parameters were fitted on these labels, so the figure is
  in-sample (optimistic); it checks that the product reproduces the fitted decisions end to end.

Also: Gender on every photo of people whose gender is clear from the name, AgeRange coverage on
LFW photos of people with known birth years, EyeDirection against tools/attributes/gaze_labels.tsv,
and whether a higher Confidence is right more often.

usage: python benchmarks/attributes_accuracy.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.attribute_labels import (  # noqa: E402
    TOOLS,
    _tsv,
    analyses,
    attribute_photos,
    balanced_accuracy,
    birth_years,
    confidence_buckets,
    gender_labels,
    lfw_photo,
    nested_cv,
)
from benchmarks.shared_faces import identity_photos, image_bytes  # noqa: E402
from rekface import operations  # noqa: E402
from rekface.adapters.bootstrap import build_context  # noqa: E402
from rekface.engine.attributes.analyzer import PARAMS_FILE, load_params  # noqa: E402
from rekface.engine.attributes.linear import binary_from_logit  # noqa: E402
from rekface.settings import Settings  # noqa: E402

sys.path.insert(0, str(TOOLS))
from fit_attributes import CANDIDATES  # noqa: E402


def central(details: list[dict]) -> dict | None:
    """The labelled face: the one whose box centre is nearest the photo's centre."""
    if not details:
        return None

    def dist(d: dict) -> float:
        b = d["BoundingBox"]
        return (b["Left"] + b["Width"] / 2 - 0.5) ** 2 + (b["Top"] + b["Height"] / 2 - 0.5) ** 2

    return min(details, key=dist)


def detect(ctx, rel: str, attributes: list[str]) -> dict | None:
    request = {"Image": {"Bytes": image_bytes(rel)}, "Attributes": attributes}
    return central(operations.run(ctx, "DetectFaces", request)["FaceDetails"])


def pr(y: np.ndarray, pred: np.ndarray) -> str:
    y, pred = y.astype(bool), pred.astype(bool)
    tp = int((y & pred).sum())
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int(y.sum()), 1)
    return (
        f"P {precision:5.3f} R {recall:5.3f} BA {balanced_accuracy(y, pred):5.3f} "
        f"(n+ {int(y.sum())}, n- {int((~y).sum())})"
    )


def binary_section(ctx, engine) -> None:
    rows = attribute_photos()
    params = load_params()
    measured = json.loads(PARAMS_FILE.read_text())["measured"]["binary"]
    shipped = sorted(params.classifiers)
    # Features of every labelled face, for the cross-validated figures.
    names = tuple(sorted({n for m in shipped for c in CANDIDATES[m] for n in c}))
    values = {rel: a.features(names) for rel, a in analyses(engine, [r.file for r in rows])}
    # The product's own answers.
    answers = {r.file: detect(ctx, r.file, ["ALL"]) for r in rows}
    missing = [r.file for r in rows if r.file not in values or answers[r.file] is None]
    print(f"attributes.tsv: {len(rows)} photos, no face found in {len(missing)}")
    print("\nBinary attributes (Value = True is the positive class)")
    for member in shipped:
        use = [r for r in rows if member in r.labels and r.file not in missing]
        y = np.array([r.labels[member] for r in use])
        groups = [r.person for r in use]

        def columns(c: tuple[str, ...], use: list = use) -> np.ndarray:
            return np.array([[values[r.file][n] for n in c] for r in use], float)

        oof = nested_cv(columns, y.astype(float), groups, CANDIDATES[member])
        cv_pred = oof >= 0
        got = np.array([answers[r.file][member]["Value"] for r in use])
        rnd = np.array([r.random for r in use])
        rare = 1 if y.mean() < 0.5 else 0
        rare_recall = float((cv_pred[y == rare] == bool(rare)).mean())
        print(f"  {member}")
        print(f"    CV, random rows       {pr(y[rnd], cv_pred[rnd])}")
        print(
            f"    CV, all rows          {pr(y, cv_pred)}; "
            f"rare class ({rare}) recall {rare_recall:.3f}"
        )
        print(f"    shipped, random rows  {pr(y[rnd], got[rnd])}  (in-sample)")
        if member == "EyesOpen":
            down = np.array([r.downcast for r in use])
            blink = (y == 0) & ~down
            keep = ~((y == 0) & down)
            print(
                f"    CV, blinks vs open    {pr(y[keep], cv_pred[keep])}; "
                f"closed recall {float((~cv_pred[blink]).mean()):.3f} of {int(blink.sum())} blinks"
            )
            print(
                f"    CV, downcast rows     {int(down[y == 0].sum())} labelled closed, "
                f"{float((~cv_pred[(y == 0) & down]).mean()):.3f} read as closed"
            )
        temperature = params.classifiers[member].temperature
        conf = np.array([binary_from_logit(z, temperature).confidence for z in oof])
        buckets = confidence_buckets(conf, cv_pred == y.astype(bool))
        print(
            "    CV Confidence buckets "
            + ", ".join(f"{b}: {s:.2f} right of {n}" for b, n, s in buckets)
        )
    print("\n  Left out (no method reached balanced accuracy 0.90 in nested CV by person):")
    for member, m in sorted(measured.items()):
        if not m["ships"]:
            print(
                f"    {member:13s} nested CV BA {m['nested_cv_balanced_accuracy']:.3f} "
                f"(n+ {m['n_positive']}, n- {m['n_negative']})"
            )


def gender_section(ctx) -> None:
    labels = gender_labels()
    files = [rel for person, rel in identity_photos() if person in labels]
    y, conf, right = [], [], []
    for rel in files:
        face = detect(ctx, rel, ["GENDER"])
        if face is None:
            continue
        truth = labels[rel.split("/")[1]]
        y.append(truth)
        conf.append(face["Gender"]["Confidence"])
        right.append(face["Gender"]["Value"] == truth)
    y_arr, right_arr, conf_arr = np.array(y), np.array(right), np.array(conf)
    cv = json.loads(PARAMS_FILE.read_text())["measured"]["gender"]
    people = len({f.split("/")[1] for f in files})
    print(
        f"\nGender: {right_arr.mean():.4f} right on {len(y)} photos of {people}"
        f" name-labelled people (women {right_arr[y_arr == 'Female'].mean():.4f} of "
        f"{int((y_arr == 'Female').sum())}, men {right_arr[y_arr == 'Male'].mean():.4f}); "
        f"threshold fitted on these photos, 10-fold CV accuracy {cv['cv_accuracy']:.4f}"
    )
    buckets = confidence_buckets(conf_arr, right_arr)
    print("  Confidence buckets " + ", ".join(f"{b}: {s:.3f} right of {n}" for b, n, s in buckets))


def age_section(ctx) -> None:
    years = birth_years()
    files = [rel for person, rel in identity_photos() if person in years and lfw_photo(rel)]
    inside, widths, errors = [], [], []
    for rel in files:
        face = detect(ctx, rel, ["AGE_RANGE"])
        if face is None:
            continue
        true = 2003 - years[rel.split("/")[1]]
        r = face["AgeRange"]
        inside.append(r["Low"] <= true <= r["High"])
        widths.append(r["High"] - r["Low"])
        errors.append((r["Low"] + r["High"]) / 2 - true)
    cv = json.loads(PARAMS_FILE.read_text())["measured"]["age_range"]
    e = np.abs(np.array(errors))
    print(
        f"\nAgeRange: true age (2003 - birth year) inside the range for {np.mean(inside):.3f} of "
        f"{len(inside)} LFW photos of {cv['people']} people; mean width {np.mean(widths):.1f} y; "
        f"range centre off by {np.median(e):.1f} y median, {np.percentile(e, 90):.1f} y p90. "
        f"10-fold CV (by person): coverage {cv['cv_coverage']:.3f}, "
        f"width {cv['cv_mean_width']:.1f} y"
    )


def gaze_section(ctx) -> None:
    rows = _tsv(TOOLS / "gaze_labels.tsv")
    got = {r["file"]: detect(ctx, r["file"], ["EYE_DIRECTION"]) for r in rows}
    h_right = h_n = v_right = v_n = 0
    centre_abs, labelled, predicted, right_conf, wrong_conf = [], [], [], [], []
    for r in rows:
        d = got[r["file"]]["EyeDirection"]
        if r["gaze_h"] in "LR":
            ok = (d["Yaw"] > 0) == (r["gaze_h"] == "R")
            h_n += 1
            h_right += ok
            labelled.append(float(r["yaw_deg"]))
            predicted.append(d["Yaw"])
            (right_conf if ok else wrong_conf).append(d["Confidence"])
        else:
            centre_abs.append(abs(d["Yaw"]))
        if r["gaze_v"] in "UD":
            v_n += 1
            v_right += (d["Pitch"] > 0) == (r["gaze_v"] == "U")
    corr = float(np.corrcoef(labelled, predicted)[0, 1])
    slope = float(np.polyfit(labelled, predicted, 1)[0])
    print(
        f"\nEyeDirection vs {len(rows)} hand-labelled photos: Yaw sign right for {h_right}/{h_n} "
        f"looking left/right, Pitch sign right for {v_right}/{v_n} looking up/down; labelled rough "
        f"yaw vs Yaw: r = {corr:.2f}, slope {slope:.2f}; |Yaw| of the {len(centre_abs)} looking "
        f"straight: median {np.median(centre_abs):.1f}, "
        f"p90 {np.percentile(centre_abs, 90):.1f} deg; "
        f"Confidence when the sign is right {np.median(right_conf):.0f} (median) vs wrong "
        f"{np.median(wrong_conf) if wrong_conf else float('nan'):.0f}"
    )


def main() -> None:
    start = time.time()
    ctx = build_context(Settings(data_dir=REPO / ".cache" / "accuracy"))
    binary_section(ctx, ctx.engine)
    gender_section(ctx)
    age_section(ctx)
    if load_params().gaze is not None:
        gaze_section(ctx)
    print(f"\n({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
