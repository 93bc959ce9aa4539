"""Print how many labelled faces of ../shared/faces/identities each QualityFilter bar rejects,
per measure: the table in rekface/operations/quality_filter.py's docstring.

usage: python tools/calibration/quality_bars.py [EVERY_NTH_PHOTO=3]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import identity_photos, labelled_face, load  # noqa: E402
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.operations.quality_filter import BARS, rejection_reasons  # noqa: E402
from rekface.settings import Settings  # noqa: E402


def main() -> None:
    every = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    engine = FaceEngine(Settings())
    levels = ("LOW", "MEDIUM", "HIGH")
    counts = {level: {} for level in levels}
    rejected = dict.fromkeys(levels, 0)
    n = 0
    for i, (_, rel) in enumerate(identity_photos()):
        if i % every:
            continue
        image = load(rel)
        face = labelled_face(engine.detect(image), image)
        if face is None:
            continue
        n += 1
        for level in levels:
            reasons = rejection_reasons(face, image, level)
            rejected[level] += bool(reasons)
            for r in reasons:
                counts[level][r] = counts[level].get(r, 0) + 1
    print(f"{n} labelled faces (every {every}th photo of identities/)")
    reasons = sorted({r for c in counts.values() for r in c})
    print("| reason | " + " | ".join(levels) + " |")
    for r in reasons:
        print(f"| {r} | " + " | ".join(f"{counts[lv].get(r, 0) / n:.1%}" for lv in levels) + " |")
    print("| any | " + " | ".join(f"{rejected[lv] / n:.1%}" for lv in levels) + " |")
    print({k: v for k, v in BARS.items()})


if __name__ == "__main__":
    main()
