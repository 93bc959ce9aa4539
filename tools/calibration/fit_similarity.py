"""Fit the cosine -> Similarity calibration on ../shared/faces and write it to
src/rekface/engine/packs/1.0/calibration.json (the built-in pack 1.0).

Data: the labelled face of every photo of identities/ through the product's engine (detect ->
align -> embed with flip); all same-person pairs and all cross-person pairs (never pairing a
deepface_person_* folder with the LFW names it may alias), about 2.8 million.

Map: piecewise linear in cosine through knots placed where the impostor (different-person)
false-match rate reaches a target, with a safety factor so that the bound also holds on people
the fit has not seen:

    Similarity 10 <-> FMR 0.5,  30 <-> 0.1,  50 <-> 1e-2,  80 <-> 1e-3,  90 <-> 1e-4,
               95 <-> 3e-5, 99 <-> 1e-5

(so that a typical stranger scores about 10, as on Rekognition, rather than near the threshold).
The safety factor is checked by a two-fold split by person (fit on half the people, measure on the
other half); both the full-data and the held-out rates are written to the JSON's ``measured``.

usage: python tools/calibration/fit_similarity.py [--check]   (--check: print, don't write)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import (  # noqa: E402
    embed_labelled,
    identity_photos,
    may_pair_as_different,
)
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.engine.models import RECOGNIZER  # noqa: E402
from rekface.settings import Settings  # noqa: E402

OUT = REPO / "src" / "rekface" / "engine" / "packs" / "1.0" / "calibration.json"
TARGETS = (
    (10.0, 0.5),
    (30.0, 0.1),
    (50.0, 1e-2),
    (80.0, 1e-3),
    (90.0, 1e-4),
    (95.0, 3e-5),
    (99.0, 1e-5),
)
# Place each knot where the fitted FMR is half its target: at 0.7 the held-out check exceeded the
# 1e-4 and 1e-5 bounds on one half (1.1e-4, 1.1e-5).
SAFETY = 0.5
REPORT_AT = (50.0, 80.0, 90.0, 95.0, 99.0)


def embed_all(engine: FaceEngine) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    people, vectors, files, missed = [], [], [], 0
    for person, rel in identity_photos():
        v = embed_labelled(engine, rel)
        if v is None:
            missed += 1
            continue
        people.append(person)
        vectors.append(v)
        files.append(rel)
    return np.array(people), np.stack(vectors), files, missed


def pair_scores(people: np.ndarray, emb: np.ndarray, subset: np.ndarray | None = None):
    """Cosines of every same-person pair and every allowed different-person pair."""
    idx = np.arange(len(people)) if subset is None else np.nonzero(subset)[0]
    p, e = people[idx], emb[idx]
    cos = e @ e.T
    iu = np.triu_indices(len(idx), 1)
    a, b = iu
    same = p[a] == p[b]
    names = sorted(set(p))
    code = {n: i for i, n in enumerate(names)}
    pa, pb = np.array([code[x] for x in p])[a], np.array([code[x] for x in p])[b]
    allowed_table = np.array([[may_pair_as_different(x, y) for y in names] for x in names])
    different = allowed_table[pa, pb]
    return cos[iu][same], cos[iu][different]


def cosine_at_fmr(impostors_desc: np.ndarray, fmr: float) -> float:
    """Smallest cosine whose false-match rate (share of impostors >= it) is at most ``fmr``."""
    k = int(np.floor(fmr * len(impostors_desc)))  # at most k impostors may reach the threshold
    k = min(k, len(impostors_desc) - 1)
    return float(np.nextafter(impostors_desc[k], np.inf))


def fit_knots(impostors: np.ndarray) -> list[list[float]]:
    desc = np.sort(impostors)[::-1]
    knots = [[-1.0, 0.0]]
    for sim, fmr in TARGETS:
        knots.append([cosine_at_fmr(desc, fmr * SAFETY), sim])
    knots.append([1.0, 100.0])
    cos = [k[0] for k in knots]
    if not all(b > a for a, b in itertools.pairwise(cos)):
        raise SystemExit(f"knots not increasing: {knots}")
    return knots


def rates(knots: list[list[float]], genuine: np.ndarray, impostors: np.ndarray) -> dict:
    cos = np.array([k[0] for k in knots])
    sim = np.array([k[1] for k in knots])
    out = {}
    for t in REPORT_AT:
        c = float(np.interp(t, sim, cos))
        out[str(int(t))] = {
            "cosine": round(c, 6),
            "false_match_rate": float((impostors >= c).mean()),
            "false_matches": int((impostors >= c).sum()),
            "true_match_rate": float((genuine >= c).mean()),
        }
    return out


def main() -> None:
    t0 = time.time()
    engine = FaceEngine(Settings())
    people, emb, files, missed = embed_all(engine)
    print(
        f"embedded {len(files)} photos of {len(set(people))} people in {time.time() - t0:.0f} s;"
        f" no face in {missed}"
    )
    genuine, impostors = pair_scores(people, emb)
    print(f"{len(genuine)} same-person pairs, {len(impostors)} different-person pairs")
    knots = fit_knots(impostors)
    measured = rates(knots, genuine, impostors)
    # Held out: fit on one half of the people, measure on the other, both ways.
    half = np.array([int(hashlib.sha256(p.encode()).hexdigest(), 16) % 2 for p in people])
    held_out = {}
    for k in (0, 1):
        _g_fit, i_fit = pair_scores(people, emb, half == k)
        g_test, i_test = pair_scores(people, emb, half != k)
        held_out[f"fit_on_half_{k}"] = rates(fit_knots(i_fit), g_test, i_test)
    result = {
        "model": RECOGNIZER.file,
        "model_sha256": RECOGNIZER.sha256,
        "pipeline": "retinaface_mnet025 landmarks -> dlib 150px chip -> dlib ResNet, flip-averaged",
        "method": "piecewise linear in cosine; knots at impostor FMR targets x safety "
        f"{SAFETY}: " + ", ".join(f"{int(s)}<->{f:g}" for s, f in TARGETS),
        "data": {
            "photos": len(files),
            "people": len(set(people)),
            "genuine_pairs": len(genuine),
            "impostor_pairs": len(impostors),
            "no_face": missed,
        },
        "knots": [[round(c, 6), s] for c, s in knots],
        "measured": measured,
        "held_out": held_out,
    }
    for t, r in measured.items():
        print(
            f"Similarity {t}: cosine {r['cosine']:.4f}  FMR {r['false_match_rate']:.2e} "
            f"({r['false_matches']})  TMR {r['true_match_rate'] * 100:.2f} %"
        )
    for name, block in held_out.items():
        print(name, {t: f"{r['false_match_rate']:.1e}" for t, r in block.items()})
    if "--check" not in sys.argv:
        OUT.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
