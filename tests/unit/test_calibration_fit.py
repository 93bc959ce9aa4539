"""The Similarity fit (rekface.engine.calibration_fit) on synthetic people whose truth is known:
its knots are from_dict-compatible, its promises hold on people it never saw, the aliased pairs
are left out and its tail model recovers a known tail."""

import itertools

import numpy as np
import pytest

from rekface.engine import calibration_fit as cf
from rekface.engine.calibrate import from_dict

DIM = 24


def population(seed: int, people: int = 240, photos: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """People in a few look-alike groups (shared direction), each photographed with noise: the
    different-person cosines have a real tail, denser within groups, as with faces. Each
    population mixes the groups in its own proportions, as new people differ in composition."""
    rng = np.random.default_rng(seed)
    groups = np.random.default_rng(99).normal(size=(5, DIM))  # the same groups in every population
    group = rng.choice(len(groups), people, p=rng.dirichlet(np.ones(len(groups))))
    centre = 0.9 * groups[group] + rng.normal(size=(people, DIM))
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    person = np.repeat(np.arange(people), photos)
    emb = centre[person] + 0.25 * rng.normal(size=(len(person), DIM)) / np.sqrt(DIM)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb.astype(np.float32), person


def different_pair_cosines(emb: np.ndarray, person: np.ndarray) -> np.ndarray:
    a, b = np.triu_indices(len(emb), 1)
    keep = person[a] != person[b]
    return np.einsum("ij,ij->i", emb[a[keep]], emb[b[keep]])


@pytest.fixture(scope="module")
def fitted() -> dict:
    emb, person = population(seed=1)
    return cf.fit_similarity_map(emb, person, model="synthetic", bootstraps=60, splits=1)


def test_result_is_a_calibration(fitted):
    cal = from_dict(fitted)
    assert cal.model == "synthetic"
    assert [k[1] for k in fitted["knots"]] == [0.0] + [s for s, _ in cf.TARGETS] + [100.0]
    assert set(fitted["measured"]) == {"50", "80", "90", "95", "99"}
    for key, row in fitted["measured"].items():
        assert cal.similarity(row["cosine"]) == pytest.approx(float(key), abs=1e-3)
        assert row["fit"]["false_match_rate"] <= row["target_fmr"]  # a bound, not an estimate
        assert row["held_out"]["different_pairs"] > 0


def test_promises_hold_on_new_people(fitted):
    """Fresh people, mixed in other proportions: the FMR at Similarity 50 and 80 stays within its
    target (1e-2, 1e-3; ~250 and ~25 expected false matches each, enough to be measured). The
    point estimate (the fitted people's own 1e-3 quantile) gives 1.16e-3 on population 2."""
    cal = from_dict(fitted)
    for seed in range(2, 7):
        emb, person = population(seed=seed)
        impostors = different_pair_cosines(emb, person)
        for sim, target in ((50.0, 1e-2), (80.0, 1e-3)):
            assert (impostors >= cal.cosine_at(sim)).mean() <= target


def test_knots_sit_above_the_point_estimate(fitted):
    """The bound is conservative: each promised knot is at or above the cosine where the fitted
    people's own FMR reaches the target."""
    emb, person = population(seed=1)
    impostors = np.sort(different_pair_cosines(emb, person))[::-1]
    for row in fitted["measured"].values():
        k = int(row["target_fmr"] * len(impostors))
        if k >= 1:
            assert row["cosine"] >= impostors[k]


def test_never_different_pairs_are_left_out():
    emb, person = population(seed=3, people=40)
    plain = cf.fit_similarity_map(emb, person, model="m", bootstraps=5, splits=1)
    fewer = cf.fit_similarity_map(
        emb, person, model="m", bootstraps=5, splits=1, never_different=[(0, 1), (2, 3)]
    )
    assert plain["data"]["impostor_pairs"] - fewer["data"]["impostor_pairs"] == 2 * 3 * 3


def test_too_few_people_is_refused():
    emb, person = population(seed=4, people=3)
    with pytest.raises(ValueError, match="at least"):
        cf.fit_similarity_map(emb, person, model="m")
    with pytest.raises(ValueError, match="one person id per row"):
        cf.fit_similarity_map(emb, person[:-1], model="m")


def test_tail_model_recovers_an_exponential_tail():
    """Generalised Pareto with shape 0 is the exponential: extrapolating the top 0.2 % of 200,000
    Exp(1) scores to a rate of 1e-6 must land near -log(1e-6) = 13.8."""
    s = np.sort(np.random.default_rng(0).exponential(size=200_000))[::-1]
    w = np.ones_like(s)
    got = cf._gpd_threshold(s, w, np.cumsum(w), float(len(s)), 1e-6, upper=np.inf)
    assert got == pytest.approx(-np.log(1e-6), rel=0.12)


def test_tail_model_recovers_a_bounded_tail():
    """Uniform scores have a bounded tail (shape 1): the 1e-6 quantile is 1 - 1e-6, capped at 1."""
    s = np.sort(np.random.default_rng(0).uniform(size=200_000))[::-1]
    w = np.ones_like(s)
    got = cf._gpd_threshold(s, w, np.cumsum(w), float(len(s)), 1e-6)
    assert 1 - 1e-4 <= got <= 1.0


def test_one_person_under_two_names_is_shown_as_suspect():
    """A photo of person 0 filed as person 1 scores like the same person against person 0's
    photos: the fit keeps it (it could be a look-alike) but names the different-person pairs at or
    above the median same-person cosine, highest first."""
    emb, person = population(seed=5, people=60, photos=6)
    person = person.copy()
    planted = int(np.nonzero(person == 0)[0][0])
    person[planted] = 1
    a, b = np.triu_indices(len(emb), 1)
    cos = np.einsum("ij,ij->i", emb[a], emb[b])
    cut = np.median(cos[person[a] == person[b]])
    expected = sorted(
        (float(c), int(i), int(j))
        for i, j, c in zip(a, b, cos, strict=True)
        if person[i] != person[j] and c >= cut
    )[::-1]
    assert any(planted in (i, j) for _, i, j in expected)  # the planted photo is among them
    suspects = cf.fit_similarity_map(emb, person, model="m", bootstraps=5, splits=1)["suspects"]
    assert suspects["cosine_at_least"] == pytest.approx(cut, abs=1e-6)
    assert suspects["pairs"] == len(expected)
    assert [(i, j) for i, j, _ in suspects["top"]] == [(i, j) for _, i, j in expected[:20]]


def test_knots_stay_a_valid_map_when_the_bounds_reach_cosine_1():
    """Few people: the bounds of the strictest promises may reach cosine 1 or tie. The knots stay
    strictly increasing below 1 once rounded, and the capped ones say so."""
    raw = dict(zip([s for s, _ in cf.TARGETS], [0.5, 0.5, 0.99, 1.0, 1.0, 1.0, 1.0], strict=True))
    how = {s: "bound" for s in raw}
    knots = cf._increasing(raw, how)
    values = [knots[s] for s, _ in cf.TARGETS]
    assert all(b > a for a, b in itertools.pairwise(values)) and values[-1] < 1.0
    assert knots[10.0] == 0.5 and knots[50.0] == 0.99
    assert "capped" in how[99.0] and "capped" not in how[50.0]
    from_dict(
        {"model": "m", "knots": [[-1.0, 0.0]] + [[knots[s], s] for s in raw] + [[1.0, 100.0]]}
    )


def test_a_small_fit_still_loads():
    emb, person = population(seed=6, people=12, photos=2)
    fitted = cf.fit_similarity_map(emb, person, model="m", bootstraps=10, splits=1)
    assert from_dict(fitted).model == "m"


def test_without_hold_out_and_with_bad_counts():
    emb, person = population(seed=8, people=12, photos=2)
    fitted = cf.fit_similarity_map(emb, person, model="m", bootstraps=5, splits=0)
    assert fitted["measured"]["80"]["held_out"]["false_match_rate"] is None
    with pytest.raises(ValueError, match="bootstraps"):
        cf.fit_similarity_map(emb, person, model="m", bootstraps=0)
