"""Fit the cosine -> Similarity map of the built-in pack 1.0 (dlib ResNet) on ../shared/faces and
write it to src/rekface/engine/packs/1.0/calibration.json.

Data: the labelled face of every photo of identities/ and singletons/ (the singletons are 400 more
different people), through the product's pipeline (RetinaFace landmarks -> 150 px chip -> dlib
ResNet, flip averaged); embeddings are cached in a tmp dir (tools/calibration/embed_cache.py).
The four deepface_person_* folders are never paired as different from the LFW names they may alias.

Method: ``rekface.engine.calibration_fit`` (the same code ``rekface models calibrate`` runs for any
pack): knots at a person-level bootstrap upper bound of the false-match rate, validated by nested
person hold-out; see docs/recognition-accuracy.md.

usage: python tools/calibration/fit_similarity.py [--check]   (--check: print, don't write)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "calibration"))

import embed_cache  # noqa: E402

from rekface.engine.calibration_fit import fit_similarity_map  # noqa: E402
from rekface.engine.models import RECOGNIZER  # noqa: E402
from rekface.settings import Settings  # noqa: E402

OUT = REPO / "src" / "rekface" / "engine" / "packs" / "1.0" / "calibration.json"


def print_table(result: dict) -> None:
    print(
        f"{'Similarity':>10} {'cosine':>8} {'fit FMR':>9} {'held-out FMR':>13} {'worst half':>11} "
        f"{'fit TMR':>8} {'held-out TMR':>13}"
    )
    for sim, row in result["measured"].items():
        fit, held = row["fit"], row["held_out"]
        print(
            f"{sim:>10} {row['cosine']:8.4f} {fit['false_match_rate']:9.2e} "
            f"{held['false_match_rate']:13.2e} {held['worst_split_false_match_rate']:11.2e} "
            f"{fit['true_match_rate'] * 100:7.1f}% {held['true_match_rate'] * 100:12.1f}%"
        )


def main() -> None:
    t0 = time.time()
    photos = embed_cache.photos()
    rec = embed_cache.PackRecognizer("dlib", embed_cache.builtin_pack("1.0"), Settings())
    emb, _ = embed_cache.embeddings(rec, photos)
    result = fit_similarity_map(
        emb,
        photos.person,
        model=RECOGNIZER.file,
        never_different=embed_cache.never_different(photos.names, photos.person),
        progress=lambda msg: print(f"[{time.time() - t0:5.0f} s] {msg}", flush=True),
    )
    # Different-person pairs that score like the same person, by file (a label to check).
    suspects = result["suspects"]
    suspects["top"] = [[photos.files[i], photos.files[j], c] for i, j, c in suspects["top"]]
    result = {
        "model": result["model"],
        "model_sha256": RECOGNIZER.sha256,
        "pipeline": "retinaface_mnet025 landmarks (central face) -> dlib 150px chip "
        "-> dlib ResNet, flip-averaged",
        "data_source": "../shared/faces identities/ + singletons/",
        **{k: v for k, v in result.items() if k != "model"},
    }
    print_table(result)
    print(
        f"{suspects['pairs']} different-person pairs at or above the median same-person cosine "
        f"({suspects['cosine_at_least']}); highest: "
        + "; ".join(f"{a} ~ {b} {c:.3f}" for a, b, c in suspects["top"][:5])
    )
    if "--check" not in sys.argv:
        OUT.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
