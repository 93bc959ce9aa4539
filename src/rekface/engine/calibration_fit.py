"""Fitting the cosine -> Similarity map so that its promises hold on people the fit never saw.

Similarity 80 / 90 / 99 promise false-match rates (FMR) of at most 1e-3 / 1e-4 / 1e-5. A point
estimate of the cosine where the FMR reaches a target, fitted on a few hundred people, is exceeded
on new people about half the time, and more in the far tail where a handful of look-alike people
carry most false matches. So every promised knot is placed at a conservative bound instead:

1. Resampling is BY PERSON (never by pair: pairs of one person are correlated). A person-level
   bootstrap draws the people with replacement; a person drawn w times weighs w in every pair it is
   part of, and the different-person pairs are those between distinct people, so each resample is a
   plausible "other set of people". New people also differ in *composition* (more of one sex, age
   or ethnicity, where look-alikes concentrate the false matches), which a plain person bootstrap
   hardly varies; so the bootstrap has two stages: ``GROUPS`` groups of look-alike people (spherical
   k-means of the people's mean embeddings; the resamples cycle through ``GROUPINGS`` k-means runs
   from different starts) are drawn with replacement, then the people of each drawn group with
   replacement.
2. In each resample, the cosine t_b where the resample's FMR falls to the target is found exactly
   from the weighted, sorted impostor scores. Where the resample holds fewer than
   ``TAIL_MODEL_BELOW_EVENTS`` expected false matches at the target (1e-5 needs millions of
   different-person pairs), the empirical quantile is too noisy, so a generalised Pareto tail is
   fitted to the resample's top ``TAIL_FRACTION`` impostor scores (weighted probability-weighted
   moments, Hosking & Wallis 1987) and extrapolated; t_b is the larger of the two.
3. The knot is a one-sided ``CONFIDENCE`` prediction bound of the threshold for a new set of
   people of the same size: median(t_b) + sqrt(2) x (the ``CONFIDENCE`` quantile of t_b - median).
   The quantile alone is an upper confidence bound of the FMR of the population the fitted people
   came from; the sqrt(2) adds the new set's own sampling spread, as for a prediction interval.

Knots that are not promises (Similarity 10 <-> FMR 0.5, 30 <-> 0.1, so a typical stranger scores
about 10 as on Rekognition) are point estimates from a uniform sample of different-person pairs.

The method is validated by nested person hold-out: in ``SPLITS`` random halvings of the people, the
whole fit (bootstrap included) is redone on one half and its FMR measured on the pairs of the other
half only; the pooled held-out rates sit beside the fit figures in ``measured``.

Pure numpy; memory is bounded by computing cosines in row blocks and keeping only the impostor pairs
above the cosine where the FMR is about ``TAIL_KEEP``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

# (Similarity, false-match-rate target). Targets at or below PROMISE_FMR are documented promises.
TARGETS: tuple[tuple[float, float], ...] = (
    (10.0, 0.5),
    (30.0, 0.1),
    (50.0, 1e-2),
    (80.0, 1e-3),
    (90.0, 1e-4),
    (95.0, 3e-5),
    (99.0, 1e-5),
)
PROMISE_FMR = 1e-2
CONFIDENCE = 0.95
# A new set of people has its own sampling spread on top of the fit's: the difference of two
# independent same-size sets' thresholds spreads sqrt(2) times one set's, so the knot is a
# prediction bound for the threshold of a new set of people, not only a confidence bound.
PREDICTION_SPREAD = float(np.sqrt(2.0))
BOOTSTRAPS = 1000
TAIL_MODEL_BELOW_EVENTS = 100.0
TAIL_FRACTION = 2e-3
MIN_TAIL_PAIRS = 30
GROUPS = 24
# k-means runs from different starts; the bootstraps cycle through them, so that the knots do not
# hang on one partition of the people.
GROUPINGS = 16
SPLITS = 5  # random halvings of the people; each half is fitted once and tested on the other
SPLIT_BOOTSTRAPS = 200
TAIL_KEEP = 5e-2
SAMPLE_PAIRS = 400_000
KEEP_ALL_PAIRS = 2_000_000
BLOCK = 1024
MIN_PEOPLE = 6
SUSPECTS_SHOWN = 20
KNOT_STEP = 2e-6  # knots are written with 6 decimals; two steps keep them distinct once rounded

Progress = Callable[[str], None]


@dataclass(frozen=True)
class _Pairs:
    """Everything the fit needs about the pairs, indexed by compact person ids."""

    photos: np.ndarray  # [P] photos per person
    forbid: np.ndarray  # [F, 2] person pairs never counted as different (both orders not needed)
    tail_a: np.ndarray  # impostor pairs with cosine >= floor, sorted by descending cosine
    tail_b: np.ndarray
    tail_s: np.ndarray
    tail_rows: np.ndarray  # [T, 2] the input rows of each kept pair
    floor: float
    sample_a: np.ndarray  # uniform sample of different-person pairs (for the non-promise knots)
    sample_b: np.ndarray
    sample_s: np.ndarray
    genuine_p: np.ndarray  # same-person pair scores and their person
    genuine_s: np.ndarray
    group: np.ndarray  # [GROUPINGS, P] look-alike group of each person, per k-means run


def fit_similarity_map(
    embeddings: np.ndarray,
    person: np.ndarray,
    *,
    model: str,
    seed: int = 0,
    progress: Progress | None = None,
    never_different: Iterable[tuple[int, int]] = (),
    bootstraps: int = BOOTSTRAPS,
    splits: int = SPLITS,
    groups: int = GROUPS,
) -> dict:
    """calibration.json content for these labelled embeddings.

    ``embeddings`` [N, D] L2-normalised; ``person`` [N] int ids (each singleton its own id);
    ``never_different``: pairs of person ids that may be the same person and must never count as
    different (e.g. aliased folders). Returns {"model", "knots" (``calibrate.from_dict``
    compatible), "method", "data", "measured", "suspects"}, where ``measured`` gives, per promised
    Similarity, the FMR and TMR on the fitted people and on people held out of the fit, and
    ``suspects`` the different-person pairs that score like the same person ({"cosine_at_least",
    "pairs": count, "top": [[row_a, row_b, cosine], ...] (input rows, highest first)}).
    """
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(seed)
    emb = np.asarray(embeddings, np.float32)
    if emb.ndim != 2 or len(emb) != len(person):
        raise ValueError("embeddings must be [N, D] with one person id per row")
    ids, pid = np.unique(np.asarray(person), return_inverse=True)
    if bootstraps < 1 or splits < 0:
        raise ValueError("bootstraps must be at least 1 and splits at least 0")
    if len(ids) < MIN_PEOPLE:
        raise ValueError(f"need photos of at least {MIN_PEOPLE} different people, got {len(ids)}")
    code = {int(v): i for i, v in enumerate(ids)}
    forbid = np.array(
        [(code[int(a)], code[int(b)]) for a, b in never_different if a in code and b in code],
        np.int64,
    ).reshape(-1, 2)
    say(f"pairs of {len(emb)} photos of {len(ids)} people")
    pairs = _collect_pairs(emb, pid, forbid, groups, rng)
    everyone = np.ones(len(ids))
    total = _different_pairs(pairs, everyone)
    say(
        f"{len(pairs.genuine_s)} same-person pairs, {total:.0f} different-person pairs; "
        f"fitting with {bootstraps} person-level bootstraps"
    )
    knots, how = _fit_knots(pairs, everyone, bootstraps, rng)
    fit = _rates(pairs, everyone, knots)
    # The halvings come from their own generator, so that every recognizer fitted on the same
    # people with the same seed is validated on the same halves.
    halves = np.random.default_rng([seed, 1])
    held = _held_out(pairs, splits, halves, rng, say)
    measured = {}
    for sim, target in TARGETS:
        if target > PROMISE_FMR:
            continue
        key = f"{sim:g}"
        measured[key] = {"target_fmr": target, "cosine": round(knots[sim], 6), "knot": how[sim]}
        measured[key]["fit"] = fit[sim]
        measured[key]["held_out"] = held[sim]
    return {
        "model": model,
        "suspects": _suspects(pairs),
        "knots": [[-1.0, 0.0]] + [[knots[s], s] for s, _ in TARGETS] + [[1.0, 100.0]],
        "method": {
            "name": "prediction bound of the threshold over two-stage person-level bootstraps",
            "lookalike_groups": groups,
            "prediction_spread": round(PREDICTION_SPREAD, 6),
            "targets": {f"{s:g}": f for s, f in TARGETS},
            "promises_at_or_below_fmr": PROMISE_FMR,
            "confidence": CONFIDENCE,
            "bootstraps": bootstraps,
            "tail_model": "generalised Pareto (weighted PWM) on the top "
            f"{TAIL_FRACTION:g} of impostor scores, used (max with the empirical bound) where a "
            f"resample holds fewer than {TAIL_MODEL_BELOW_EVENTS:g} false matches at the target",
            "held_out": f"{splits} random halvings of the people; fit on one half (with "
            f"{SPLIT_BOOTSTRAPS} bootstraps), false matches counted on pairs of the other half "
            "only; rates pooled over the 2 x splits tests",
            "seed": seed,
        },
        "data": {
            "photos": len(emb),
            "people": len(ids),
            "genuine_pairs": len(pairs.genuine_s),
            "impostor_pairs": int(total),
        },
        "measured": measured,
    }


def _lookalike_groups(
    emb: np.ndarray, pid: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Spherical k-means of the people's mean embeddings: people who look alike (in practice much
    of it is sex, age and ethnicity) share a group. 0 or 1 group: every person its own group."""
    people = int(pid.max()) + 1
    if k <= 1:
        return np.arange(people)
    centroids = np.zeros((people, emb.shape[1]))
    np.add.at(centroids, pid, emb)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    k = min(k, people)
    centres = centroids[rng.choice(people, k, replace=False)]
    label = np.zeros(people, np.int64)
    for _ in range(50):
        label = np.argmax(centroids @ centres.T, axis=1)
        new = np.zeros_like(centres)
        np.add.at(new, label, centroids)
        empty = np.bincount(label, minlength=k) == 0
        new[empty] = centroids[rng.choice(people, int(empty.sum()), replace=False)]
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
        if np.allclose(new, centres):
            break
        centres = new
    return label


def _collect_pairs(
    emb: np.ndarray, pid: np.ndarray, forbid: np.ndarray, groups: int, rng: np.random.Generator
) -> _Pairs:
    n = len(emb)
    people = int(pid.max()) + 1
    blocked = np.zeros((people, people), bool)
    if len(forbid):
        blocked[forbid[:, 0], forbid[:, 1]] = blocked[forbid[:, 1], forbid[:, 0]] = True
    # A uniform sample of different-person pairs gives the floor of the kept tail and the
    # non-promise knots, without holding all N^2 / 2 scores.
    m = min(SAMPLE_PAIRS, n * (n - 1) // 2)
    ia, ib = rng.integers(0, n, m), rng.integers(0, n, m)
    ok = (pid[ia] != pid[ib]) & ~blocked[pid[ia], pid[ib]]
    ia, ib = ia[ok], ib[ok]
    sample_s = np.einsum("ij,ij->i", emb[ia], emb[ib])
    if len(sample_s) == 0:
        raise ValueError("no different-person pairs")
    # Few photos: keep every pair (exact counts at any cosine); many: only the top TAIL_KEEP.
    floor = (
        -1.0
        if n * (n - 1) // 2 <= KEEP_ALL_PAIRS
        else float(np.quantile(sample_s, 1.0 - TAIL_KEEP))
    )
    ta, tb, ts, gp, gs, rows_a, rows_b = [], [], [], [], [], [], []
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        scores = emb[rows] @ emb.T
        r = np.arange(rows.start, rows.stop)[:, None]
        c = np.arange(n)[None, :]
        upper = c > r
        same = pid[r] == pid[c]
        gi = np.nonzero(upper & same)
        gp.append(pid[rows][gi[0]])
        gs.append(scores[gi])
        keep = np.nonzero(upper & ~same & (scores >= floor))
        a, b = pid[rows][keep[0]], pid[keep[1]]
        allowed = ~blocked[a, b]
        ta.append(a[allowed])
        tb.append(b[allowed])
        ts.append(scores[keep][allowed])
        rows_a.append((keep[0] + start)[allowed].astype(np.int32))
        rows_b.append(keep[1][allowed].astype(np.int32))
    tail_s = np.concatenate(ts)
    order = np.argsort(-tail_s, kind="stable")
    return _Pairs(
        photos=np.bincount(pid, minlength=people).astype(np.float64),
        forbid=forbid,
        tail_a=np.concatenate(ta)[order],
        tail_b=np.concatenate(tb)[order],
        tail_s=tail_s[order].astype(np.float64),
        tail_rows=np.stack([np.concatenate(rows_a), np.concatenate(rows_b)], 1)[order],
        floor=floor,
        sample_a=pid[ia],
        sample_b=pid[ib],
        sample_s=sample_s.astype(np.float64),
        genuine_p=np.concatenate(gp),
        genuine_s=np.concatenate(gs).astype(np.float64),
        group=np.stack([_lookalike_groups(emb, pid, groups, rng) for _ in range(GROUPINGS)]),
    )


def _suspects(pairs: _Pairs) -> dict:
    """Different-person pairs scoring like the same person (at or above the median same-person
    cosine): mislabelled photos, or one person under two names, look like this. They are kept in
    the fit (they may be real look-alikes), which makes the map stricter; the rows are returned
    so that a caller can show them and the user can fix the labels."""
    if len(pairs.genuine_s) == 0:
        return {"cosine_at_least": None, "pairs": 0, "top": []}
    cut = float(np.median(pairs.genuine_s))
    k = int(np.searchsorted(-pairs.tail_s, -cut, side="right"))
    top = [
        [int(i), int(j), round(float(c), 6)]
        for (i, j), c in zip(pairs.tail_rows[:SUSPECTS_SHOWN], pairs.tail_s[:k], strict=False)
    ]
    return {"cosine_at_least": round(cut, 6), "pairs": k, "top": top}


def _different_pairs(pairs: _Pairs, w: np.ndarray) -> float:
    """Number of different-person pairs among people weighted by ``w`` (bootstrap multiplicity)."""
    wn = w * pairs.photos
    total = (wn.sum() ** 2 - (wn**2).sum()) / 2.0
    if len(pairs.forbid):
        a, b = pairs.forbid[:, 0], pairs.forbid[:, 1]
        total -= float((wn[a] * wn[b]).sum())
    return float(total)


def _gpd_threshold(
    s: np.ndarray, ws: np.ndarray, cw: np.ndarray, d: float, fmr: float, upper: float = 1.0
) -> float:
    """Cosine where a generalised Pareto tail, fitted to the top TAIL_FRACTION of the weighted
    impostor scores ``s`` (descending, weights ``ws``, cumulative ``cw``, ``d`` pairs in all),
    reaches ``fmr`` (at most ``upper``, the largest cosine); nan if the tail holds too few pairs
    to fit."""
    k_u = int(np.searchsorted(cw, TAIL_FRACTION * d, side="right"))
    if k_u < MIN_TAIL_PAIRS or k_u >= len(s):
        return float("nan")
    u = s[k_u]
    y, wy = (s[:k_u] - u)[::-1], ws[:k_u][::-1]  # ascending exceedances
    keep = wy > 0
    y, wy = y[keep], wy[keep]
    total = wy.sum()
    if len(y) < MIN_TAIL_PAIRS or total <= 0:
        return float("nan")
    cdf = (np.cumsum(wy) - 0.5 * wy) / total
    a0 = float((wy * y).sum() / total)
    a1 = float((wy * y * (1.0 - cdf)).sum() / total)
    if a0 <= 0 or a0 - 2 * a1 <= 0:
        return float("nan")
    shape = a0 / (a0 - 2 * a1) - 2.0  # Hosking's k (= -xi); k > 0: bounded tail
    scale = 2 * a0 * a1 / (a0 - 2 * a1)
    p_exceed_u = cw[k_u - 1] / d
    ratio = min(fmr / p_exceed_u, 1.0)
    if abs(shape) < 1e-6:
        excess = -scale * np.log(ratio)
    else:
        excess = scale / shape * (1.0 - ratio**shape)
    return float(min(u + excess, upper))


def _threshold(pairs: _Pairs, w: np.ndarray, fmr: float) -> tuple[float, bool]:
    """Smallest cosine whose FMR among people weighted by ``w`` is at most ``fmr``, and whether the
    tail model decided it."""
    ws = w[pairs.tail_a] * w[pairs.tail_b]
    cw = np.cumsum(ws)
    d = _different_pairs(pairs, w)
    k = int(np.searchsorted(cw, fmr * d, side="right"))
    t = pairs.floor if k >= len(pairs.tail_s) else float(np.nextafter(pairs.tail_s[k], np.inf))
    if fmr * d < TAIL_MODEL_BELOW_EVENTS:
        g = _gpd_threshold(pairs.tail_s, ws, cw, d, fmr)
        if np.isfinite(g) and g > t:
            return g, True
    return t, False


def _sample_threshold(pairs: _Pairs, member: np.ndarray, fmr: float) -> float:
    ok = member[pairs.sample_a] & member[pairs.sample_b]
    s = pairs.sample_s[ok]
    if len(s) == 0:
        raise ValueError("no different-person pairs")
    return float(np.quantile(s, 1.0 - fmr))


def _fit_knots(
    pairs: _Pairs, w: np.ndarray, bootstraps: int, rng: np.random.Generator
) -> tuple[dict[float, float], dict[float, str]]:
    """Knot cosine per Similarity among the people with weight ``w`` > 0 (0/1 weights)."""
    members = np.nonzero(w > 0)[0]
    groupings = [
        [members[grouping[members] == g] for g in np.unique(grouping[members])]
        for grouping in pairs.group
    ]
    promised = [(s, f) for s, f in TARGETS if f <= PROMISE_FMR]
    draws = {s: np.empty(bootstraps) for s, _ in promised}
    tail_used = {s: 0 for s, _ in promised}
    for b in range(bootstraps):
        wb = _resample(groupings[b % len(groupings)], len(w), rng)
        for s, f in promised:
            draws[s][b], used = _threshold(pairs, wb, f)
            tail_used[s] += used
    knots, how = {}, {}
    member = w > 0
    for s, f in TARGETS:
        if f > PROMISE_FMR:
            knots[s] = _sample_threshold(pairs, member, f)
            how[s] = "point estimate (uniform pair sample)"
        else:
            centre = float(np.median(draws[s]))
            spread = float(np.quantile(draws[s], CONFIDENCE)) - centre
            knots[s] = centre + PREDICTION_SPREAD * max(spread, 0.0)
            share = tail_used[s] / bootstraps
            how[s] = (
                f"{CONFIDENCE:g} prediction bound from {bootstraps} two-stage person-bootstrap "
                "thresholds"
            ) + (f"; tail model decided {share:.0%} of them" if share else "")
    return _increasing(knots, how), how


def _increasing(knots: dict[float, float], how: dict[float, str]) -> dict[float, float]:
    """Knots rounded to 6 decimals, strictly increasing between -1 and 1 as
    ``calibrate.from_dict`` requires. With few people the bound for the strictest promises can
    reach cosine 1: those knots are put just below 1 (the promise then holds by matching almost
    nothing), and ``how`` says so."""
    sims = [s for s, _ in TARGETS]
    out = {s: min(max(knots[s], -1.0 + KNOT_STEP), 1.0) for s in sims}
    prev = -1.0
    for s in sims:  # forward: at least one step above the previous knot
        out[s] = max(out[s], prev + KNOT_STEP)
        prev = out[s]
    ceiling = 1.0 - KNOT_STEP
    for s in reversed(sims):  # backward: below 1, one step under the next knot
        if out[s] > ceiling:
            out[s] = ceiling
            how[s] += "; capped below cosine 1: the photos cannot support this promise"
        ceiling = out[s] - KNOT_STEP
    return {s: round(v, 6) for s, v in out.items()}


def _resample(groups: list[np.ndarray], people: int, rng: np.random.Generator) -> np.ndarray:
    """Two-stage bootstrap weights: groups of look-alike people drawn with replacement, then the
    people of each drawn group with replacement (one group per person: the plain person
    bootstrap)."""
    drawn = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
    picks = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in drawn])
    return np.bincount(picks, minlength=people).astype(np.float64)


def _count(pairs: _Pairs, member: np.ndarray, cosine: float) -> int:
    """Different-person pairs among ``member`` people with cosine >= ``cosine``; below the kept
    tail (only reachable when a nested fit on half the people lands that low), estimated from
    the uniform sample."""
    if cosine < pairs.floor:
        ok = member[pairs.sample_a] & member[pairs.sample_b]
        share = float((pairs.sample_s[ok] >= cosine).mean()) if ok.any() else 0.0
        return round(share * _different_pairs(pairs, member.astype(np.float64)))
    k = int(np.searchsorted(-pairs.tail_s, -cosine, side="right"))
    return int((member[pairs.tail_a[:k]] & member[pairs.tail_b[:k]]).sum())


def _rates(pairs: _Pairs, w: np.ndarray, knots: dict[float, float]) -> dict[float, dict]:
    member = w > 0
    d = _different_pairs(pairs, member.astype(np.float64))
    gen = pairs.genuine_s[member[pairs.genuine_p]]
    out = {}
    for s, f in TARGETS:
        if f > PROMISE_FMR:
            continue
        false = _count(pairs, member, knots[s])
        out[s] = {
            "false_match_rate": false / d,
            "false_matches": false,
            "different_pairs": int(d),
            "true_match_rate": float((gen >= knots[s]).mean()) if len(gen) else None,
        }
    return out


def _held_out(
    pairs: _Pairs,
    splits: int,
    halves: np.random.Generator,
    rng: np.random.Generator,
    say: Progress,
) -> dict[float, dict]:
    people = len(pairs.photos)
    sums: dict[float, dict] = {
        s: {"false": 0, "pairs": 0.0, "true": 0, "genuine": 0, "worst": 0.0, "over": 0}
        for s, f in TARGETS
        if f <= PROMISE_FMR
    }
    for r in range(splits):
        half = halves.permutation(people) < people // 2
        for fit_half in (half, ~half):
            knots, _ = _fit_knots(pairs, fit_half.astype(np.float64), SPLIT_BOOTSTRAPS, rng)
            test = ~fit_half
            d = _different_pairs(pairs, test.astype(np.float64))
            gen = pairs.genuine_s[test[pairs.genuine_p]]
            for s, acc in sums.items():
                false = _count(pairs, test, knots[s])
                acc["false"] += false
                acc["pairs"] += d
                acc["true"] += int((gen >= knots[s]).sum())
                acc["genuine"] += len(gen)
                acc["worst"] = max(acc["worst"], false / d)
                acc["over"] += false / d > dict(TARGETS)[s]
        say(f"held-out split {r + 1}/{splits} done")
    return {
        s: {
            "false_match_rate": acc["false"] / acc["pairs"] if acc["pairs"] else None,
            "false_matches": acc["false"],
            "different_pairs": int(acc["pairs"]),
            "worst_split_false_match_rate": acc["worst"],
            "splits_over_target": f"{acc['over']} of {2 * splits}",
            "true_match_rate": acc["true"] / acc["genuine"] if acc["genuine"] else None,
        }
        for s, acc in sums.items()
    }
