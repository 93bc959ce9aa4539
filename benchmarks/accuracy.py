"""Verification accuracy of rekface on ../shared/faces/pairs.tsv, through the product's code.

Two ways of choosing the face of each photo:
- labelled: the face the dataset labels (LFW crops centre the named person);
- largest:  the largest face, what CompareFaces and SearchFacesByImage use. In 7 LFW photos of
  pairs.tsv a larger face of someone else, cut by the edge, beats the named person.
Both go through the product's engine (decode -> detect -> align -> embed with flip) and the
calibrated Similarity. Prints 10-fold accuracy (threshold chosen on 9 folds, applied to the
10th), TMR at FMR 1e-2 / 1e-3 and the match rates at Similarity thresholds 50..99.

usage: python benchmarks/accuracy.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.shared_faces import labelled_face, load, pairs, tenfold_ids
from rekface.engine.calibrate import load_calibration
from rekface.engine.faces import FaceEngine
from rekface.settings import Settings

THRESHOLDS = (50, 80, 90, 95, 99)


def tenfold_accuracy(
    scores: np.ndarray, same: np.ndarray, folds: np.ndarray
) -> tuple[float, float]:
    accs = []
    for k in range(10):
        train, test = folds != k, folds == k
        candidates = np.unique(scores[train])
        best = max(candidates, key=lambda t: ((scores[train] >= t) == same[train]).mean())
        accs.append(((scores[test] >= best) == same[test]).mean())
    return float(np.mean(accs) * 100), float(np.std(accs) * 100)


def tmr_at_fmr(scores: np.ndarray, same: np.ndarray, fmr: float) -> float:
    impostors = np.sort(scores[~same])[::-1]
    k = min(int(fmr * len(impostors)), len(impostors) - 1)
    return float((scores[same] > impostors[k]).mean() * 100)


def embed_photos(engine: FaceEngine, files: list[str]) -> tuple[dict, dict, float]:
    labelled, largest = {}, {}
    t0 = time.perf_counter()
    for rel in files:
        image = load(rel)
        faces = engine.detect(image)
        chosen = labelled_face(faces, image)
        if chosen is None:
            labelled[rel] = largest[rel] = None
            continue
        engine.embed([chosen, faces[0]])
        labelled[rel], largest[rel] = chosen.embedding, faces[0].embedding
    return labelled, largest, (time.perf_counter() - t0) / len(files)


def report(name: str, emb: dict, rows: list, same: np.ndarray, folds: np.ndarray) -> None:
    cos = np.array(
        [
            float(emb[p.a] @ emb[p.b]) if emb[p.a] is not None and emb[p.b] is not None else -1.0
            for p in rows
        ]
    )
    sim = load_calibration().similarity(cos)
    acc, sd = tenfold_accuracy(cos, same, folds)
    print(
        f"{name:>9}: 10-fold accuracy {acc:.2f} ± {sd:.2f} %   "
        f"TMR @ FMR 1e-2 {tmr_at_fmr(cos, same, 1e-2):.1f} %   "
        f"@ 1e-3 {tmr_at_fmr(cos, same, 1e-3):.1f} %"
    )
    for t in THRESHOLDS:
        print(
            f"{'':>11}Similarity >= {t}: same-person pairs matched "
            f"{(sim[same] >= t).mean() * 100:5.1f} %, different-person pairs matched "
            f"{(sim[~same] >= t).sum()} of {(~same).sum()}"
        )


def main() -> None:
    rows = pairs()
    same = np.array([p.same for p in rows])
    folds = tenfold_ids(same)
    files = sorted({p.a for p in rows} | {p.b for p in rows})
    engine = FaceEngine(Settings())
    engine.warm_up()
    labelled, largest, per_photo = embed_photos(engine, files)
    missing = sum(v is None for v in labelled.values())
    print(
        f"pairs.tsv: {same.sum()} same + {(~same).sum()} different pairs over {len(files)} "
        f"photos; no face in {missing}; {per_photo * 1000:.1f} ms per photo "
        "(decode + detect + embed 2 faces with flip)"
    )
    report("labelled", labelled, rows, same, folds)
    report("largest", largest, rows, same, folds)


if __name__ == "__main__":
    main()
