"""Embedding cost per face of recognizer packs, as a ratio to the built-in pack 1.0, measured in
the same run on the same faces (the machine's speed varies; ratios travel, milliseconds do not).

    python benchmarks/pack_cost.py --packs-dir DIR [--faces 64] [--rounds 5]

Each pack embeds the same detected faces (largest face of identity photos of ../shared/faces),
alignment and flip averaging included, in batches as IndexFaces does (one face per call) and as
a batch of all of them; rounds alternate between packs so that drifts in machine speed hit both.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import SHARED_FACES, identity_photos, load  # noqa: E402
from rekface.engine.faces import FaceEngine, pack_chip  # noqa: E402
from rekface.settings import Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packs-dir", type=Path, action="append", default=[])
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    settings = replace(Settings.from_env(), packs_dirs=tuple(args.packs_dir))
    engine = FaceEngine(settings)
    faces = []
    for _person, rel in identity_photos():
        found = engine.detect(load(rel), max_faces=1)
        faces += found[:1]
        if len(faces) >= args.faces:
            break
    print(f"{len(faces)} faces of {SHARED_FACES / 'identities'}; {args.rounds} rounds")
    recognizers = {v: engine.recognizer(v) for v in engine.packs.versions()}
    single: dict[str, list[float]] = {v: [] for v in recognizers}
    batch: dict[str, list[float]] = {v: [] for v in recognizers}
    for _ in range(args.rounds):
        for version, rec in recognizers.items():
            start = time.process_time()
            for face in faces:  # one face per call, chip cut included
                rec.embedder.embed(pack_chip(rec.pack, face)[None])
            single[version].append((time.process_time() - start) / len(faces) * 1e3)
            chips = [pack_chip(rec.pack, f) for f in faces]
            start = time.process_time()
            rec.embedder.embed(np.stack(chips))
            batch[version].append((time.process_time() - start) / len(faces) * 1e3)
    base_single = min(single["1.0"])
    base_batch = min(batch["1.0"])
    print("version  name                  dims  CPU ms/face (1 per call)  ratio  (batch)  ratio")
    for version, rec in recognizers.items():
        s, b = min(single[version]), min(batch[version])
        print(
            f"{version:7s}  {rec.pack.name:20s}  {rec.pack.dims:4d}  {s:24.2f}  "
            f"{s / base_single:5.2f}  {b:7.2f}  {b / base_batch:5.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
