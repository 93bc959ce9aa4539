"""Recognizer packs side by side on ../shared/faces: same photos, same faces, same folds, one run.

Packs: 1.0 (the built-in dlib ResNet), the reference MobileFaceNet (``../shared/models/
mobilefacenet_expo.onnx``, read in place through a pack made in a tmp dir; it may never ship) and,
when ``.venv-models`` exists or ``--int8`` names one, the int8 dlib candidate of
``tools/models/dlib_int8.py`` (built into a tmp dir). Every pack embeds through the product's pack
code (tools/calibration/embed_cache.py: RetinaFace landmarks of the labelled face -> the pack's
alignment -> its Embedder, flip averaged).

Per pack:
- 10-fold accuracy on pairs.tsv (threshold chosen on 9 folds, applied to the 10th);
- on all identity pairs (every same-person pair and every different-person pair of identities/,
  the deepface_person_* folders never paired with their LFW namesakes): balanced accuracy at the
  best threshold, TMR at FMR 1e-3 and 1e-4;
- rank-1: a gallery of the first photo of each identity plus every singleton, probed with the
  other photos of identities;
- the pack's own Similarity map fitted by ``rekface.engine.calibration_fit`` (identities +
  singletons), with its person-held-out FMR at Similarity 80 / 90 / 99 (the same halvings of the
  people for every pack) and held-out TMR at 80;
- CPU ms per face (chip + embedding with flip, one onnxruntime thread, process CPU time), in
  alternating rounds over the same faces, and its ratio to 1.0 in this run.

The int8 acceptance rule of issue 20 §3 is printed: accuracy within 0.1 point and TMR at FMR 1e-3
within 0.5 point of 1.0 on all identity pairs (and on pairs.tsv).

usage: python benchmarks/recognizers.py [--int8 PATH | --no-int8] [--rounds N] [--faces N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "calibration"))

import embed_cache  # noqa: E402

from benchmarks.accuracy import tenfold_accuracy  # noqa: E402
from benchmarks.shared_faces import load, pairs, tenfold_ids  # noqa: E402
from rekface.engine.calibration_fit import fit_similarity_map  # noqa: E402
from rekface.settings import Settings  # noqa: E402

SHARED_MODELS = REPO.parent / "shared" / "models"
MOBILEFACENET = SHARED_MODELS / "mobilefacenet_expo.onnx"
# pack.json of the reference pack, as issue 20 gives it (sha256 and onnx filled in by make_pack).
MOBILEFACENET_PACK = {
    "name": "mobilefacenet-expo",
    "face_model_version": "2.0",
    "input": {"size": 112, "layout": "NCHW", "channels": "RGB", "mean": 127.5, "std": 128.0},
    "alignment": {
        "size": 112,
        "template": [
            [38.2946, 51.6963],
            [73.5318, 51.5014],
            [56.0252, 71.7366],
            [41.5493, 92.3655],
            [70.7299, 92.2041],
        ],
    },
    "output": {"name": "embeddings", "dims": 192},
    "flip": True,
    "license": "reference only (../shared/models/MANIFEST.tsv: may_ship no)",
    "source": "../shared/models/mobilefacenet_expo.onnx",
}
SIMILARITIES = ("80", "90", "99")


def int8_pack(path: Path | None, tmp: Path) -> embed_cache.Pack | None:
    """The int8 candidate as a tmp pack (1.0's pack.json, version 1.1), built if needed."""
    if path is None:
        venv = REPO / ".venv-models" / "bin" / "python"
        if not venv.exists():
            print("int8: skipped (no .venv-models: `make .venv-models/.installed`)")
            return None
        path = tmp / "dlib_int8.onnx"
        if not path.exists():
            chips = tmp / "int8-chips.npy"
            recipe = REPO / "tools" / "models" / "dlib_int8.py"
            subprocess.run([sys.executable, recipe, "chips", chips], check=True)
            subprocess.run([venv, recipe, "build", chips, path], check=True)
    base = embed_cache.builtin_pack("1.0")
    meta = {
        "name": "dlib-resnet-v1-int8",
        "face_model_version": "1.1",
        "input": {"size": 150, "layout": "NHWC", "channels": "RGB", "mean": 0.0, "std": 1.0},
        "alignment": {"size": base.alignment_size, "template": base.template.tolist()},
        "output": {"name": base.output_name, "dims": base.dims},
        "flip": base.flip,
        "license": "CC0-1.0 (derived from the shipped dlib weights)",
        "source": "tools/models/dlib_int8.py",
    }
    return embed_cache.make_pack(tmp / "packs" / "dlib-int8", meta, path)


def tmr_at(genuine: np.ndarray, impostors_desc: np.ndarray, fmr: float) -> float:
    k = min(int(fmr * len(impostors_desc)), len(impostors_desc) - 1)
    return float((genuine > impostors_desc[k]).mean() * 100)


def balanced_accuracy(genuine: np.ndarray, impostors: np.ndarray) -> float:
    """Best (TMR + TNR) / 2 over all thresholds: same- and different-person pairs weigh the same."""
    scores = np.concatenate([genuine, impostors])
    same = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostors), bool)])
    order = np.argsort(-scores, kind="stable")
    s = same[order]
    tmr = np.cumsum(s) / len(genuine)  # threshold just below each score
    fmr = np.cumsum(~s) / len(impostors)
    return float(((tmr + 1 - fmr) / 2).max() * 100)


def identity_pairs(emb: np.ndarray, ph: embed_cache.Photos) -> tuple[np.ndarray, np.ndarray]:
    """Scores of all same-person and allowed different-person pairs of identities/."""
    idx = np.nonzero(~ph.singleton)[0]
    e, p = emb[idx], ph.person[idx]
    a, b = np.triu_indices(len(idx), 1)
    s = np.einsum("ij,ij->i", e[a], e[b])
    same = p[a] == p[b]
    blocked = np.zeros((ph.person.max() + 1,) * 2, bool)
    for x, y in embed_cache.never_different(ph.names, ph.person):
        blocked[x, y] = blocked[y, x] = True
    different = ~same & ~blocked[p[a], p[b]]
    return s[same], s[different]


def rank1(emb: np.ndarray, ph: embed_cache.Photos) -> tuple[float, int, int]:
    first: dict[int, int] = {}
    for i, p in enumerate(ph.person):  # identities first, then singletons (photos() order)
        first.setdefault(int(p), i)
    gallery = np.array(sorted(first.values()))
    probes = np.array([i for i in range(len(emb)) if i not in set(gallery)])
    best = gallery[np.argmax(emb[probes] @ emb[gallery].T, axis=1)]
    same_as = {(a, b) for a, b in embed_cache.never_different(ph.names, ph.person)}
    right = [
        ph.person[q] == ph.person[g] or (int(ph.person[q]), int(ph.person[g])) in same_as
        for q, g in zip(probes, best, strict=True)
    ]
    return float(np.mean(right) * 100), len(gallery), len(probes)


def cpu_ms(recs: list, ph: embed_cache.Photos, faces: int, rounds: int) -> dict[str, float]:
    """Median over rounds of CPU ms per face (chip + embed with flip), packs alternating."""
    step = max(1, len(ph.files) // faces)
    chosen = list(range(0, len(ph.files), step))[:faces]
    images = [(load(ph.files[i]).rgb, ph.points[i]) for i in chosen]
    for rec in recs:  # warm-up: first runs allocate
        rec.embed(rec.chip(*images[0])[None])
    times: dict[str, list[float]] = {rec.name: [] for rec in recs}
    for _ in range(rounds):
        for rec in recs:
            c0 = time.process_time()
            for rgb, pts in images:
                rec.embed(rec.chip(rgb, pts)[None])
            times[rec.name].append((time.process_time() - c0) / len(images) * 1000)
    return {name: float(np.median(t)) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--int8", type=Path, help="an int8 dlib ONNX (default: build one into tmp)")
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--faces", type=int, default=150)
    args = ap.parse_args()
    t0 = time.time()

    def say(msg: str) -> None:
        print(f"[{time.time() - t0:5.0f} s] {msg}", flush=True)

    settings = Settings()
    tmp = embed_cache.CACHE / "bench"
    ph = embed_cache.photos(say)
    recs = [embed_cache.PackRecognizer("1.0", embed_cache.builtin_pack("1.0"), settings, 1)]
    if MOBILEFACENET.exists():
        pack = embed_cache.make_pack(
            tmp / "packs" / "mobilefacenet", MOBILEFACENET_PACK, MOBILEFACENET
        )
        recs.append(embed_cache.PackRecognizer("reference", pack, settings, 1))
    else:
        print(f"reference pack: skipped ({MOBILEFACENET} not found)")
    if not args.no_int8:
        pack = int8_pack(args.int8, tmp)
        if pack is not None:
            recs.append(embed_cache.PackRecognizer("int8", pack, settings, 1))

    rows = pairs()
    same = np.array([p.same for p in rows])
    folds = tenfold_ids(same)
    where = {f: i for i, f in enumerate(ph.files)}
    results: dict[str, dict] = {}
    for rec in recs:
        emb, _ = embed_cache.embeddings(rec, ph, say)
        r: dict = {}
        cos = np.array([float(emb[where[p.a]] @ emb[where[p.b]]) for p in rows])
        r["pairs_acc"], r["pairs_sd"] = tenfold_accuracy(cos, same, folds)
        genuine, impostors = identity_pairs(emb, ph)
        desc = np.sort(impostors)[::-1]
        r["all_acc"] = balanced_accuracy(genuine, impostors)
        r["tmr3"], r["tmr4"] = tmr_at(genuine, desc, 1e-3), tmr_at(genuine, desc, 1e-4)
        r["rank1"], gallery, probes = rank1(emb, ph)
        say(f"{rec.name}: fitting its Similarity map")
        cal = fit_similarity_map(
            emb,
            ph.person,
            model=rec.pack.onnx,
            never_different=embed_cache.never_different(ph.names, ph.person),
        )
        r["cal"] = cal["measured"]
        results[rec.name] = r
    say(f"CPU time: {args.rounds} rounds of {args.faces} faces, one thread, packs alternating")
    ms = cpu_ms(recs, ph, args.faces, args.rounds)

    n_gen, n_imp = len(genuine), len(impostors)
    print()
    print(
        f"{len(ph.files)} photos of {len(set(ph.person.tolist()))} people; pairs.tsv "
        f"{same.sum()} + {(~same).sum()}; all identity pairs {n_gen} same + {n_imp} different; "
        f"rank-1 gallery {gallery}, probes {probes}"
    )
    head = (
        f"{'pack':<10} {'pairs.tsv 10-fold':>18} {'all-pairs acc':>13} {'TMR@1e-3':>9} "
        f"{'TMR@1e-4':>9} {'rank-1':>7} "
        + " ".join(f"{'HO FMR@' + s:>11}" for s in SIMILARITIES)
        + f" {'HO TMR@80':>9} {'CPU ms':>7} {'ratio':>6}"
    )
    print(head)
    base = ms["1.0"]
    for name, r in results.items():
        print(
            f"{name:<10} {r['pairs_acc']:>11.2f} ± {r['pairs_sd']:.2f} {r['all_acc']:>13.2f} "
            f"{r['tmr3']:>9.2f} {r['tmr4']:>9.2f} {r['rank1']:>7.2f} "
            + " ".join(
                f"{r['cal'][s]['held_out']['false_match_rate']:>11.1e}" for s in SIMILARITIES
            )
            + f" {r['cal']['80']['held_out']['true_match_rate'] * 100:>8.1f}%"
            f" {ms[name]:>7.2f} {ms[name] / base:>6.2f}"
        )
    if "int8" in results:
        a, b = results["1.0"], results["int8"]
        d_all, d_pairs = b["all_acc"] - a["all_acc"], b["pairs_acc"] - a["pairs_acc"]
        d_tmr = b["tmr3"] - a["tmr3"]
        ok = d_all >= -0.1 and d_pairs >= -0.1 and d_tmr >= -0.5
        print(
            f"\nint8 vs 1.0: accuracy {d_all:+.2f} (all pairs), {d_pairs:+.2f} (pairs.tsv) points; "
            f"TMR@1e-3 {d_tmr:+.2f} points; CPU {ms['int8'] / base:.2f}x -> "
            + ("passes the rule (within 0.1 / 0.5 point)" if ok else "fails the rule: keep fp32")
        )


if __name__ == "__main__":
    main()
