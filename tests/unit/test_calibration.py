"""The committed Similarity calibration: monotonic, 0..100, and meeting its documented bounds."""

import json

import numpy as np
import pytest

from rekface.engine.calibrate import BUILTIN_CALIBRATION, from_dict, load_calibration
from rekface.engine.models import RECOGNIZER


@pytest.fixture(scope="module")
def fitted() -> dict:
    return json.loads(BUILTIN_CALIBRATION.read_text())


def test_map_is_monotonic_and_spans_0_to_100():
    cal = load_calibration()
    cos = np.linspace(-1, 1, 20001)
    sim = cal.similarity(cos)
    assert sim[0] == 0 and sim[-1] == 100
    assert np.all(np.diff(sim) >= 0)
    for t in (0, 50, 80, 90, 99, 100):
        assert cal.similarity(cal.cosine_at(t)) == pytest.approx(t, abs=1e-9)


def test_fitted_for_the_shipped_recognizer(fitted):
    assert fitted["model"] == RECOGNIZER.file and fitted["model_sha256"] == RECOGNIZER.sha256


def test_thresholds_meet_their_false_match_bounds(fitted):
    """On the fitted people and on people each nested fit never saw (pooled and worst half)."""
    bounds = {"80": 1e-3, "90": 1e-4, "99": 1e-5}
    for t, fmr in bounds.items():
        row = fitted["measured"][t]
        assert row["target_fmr"] == fmr
        assert row["fit"]["false_match_rate"] <= fmr
        assert row["held_out"]["false_match_rate"] <= fmr
        assert row["held_out"]["worst_split_false_match_rate"] <= fmr
        assert load_calibration().cosine_at(float(t)) == pytest.approx(row["cosine"], abs=1e-6)
    assert fitted["data"]["impostor_pairs"] > 3_500_000  # identities and singletons
    assert fitted["method"]["bootstraps"] >= 200


def test_bad_knots_are_refused():
    with pytest.raises(ValueError):
        from_dict({"model": "m", "knots": [[-1, 0], [0.5, 60], [0.4, 80], [1, 100]]})
    with pytest.raises(ValueError):
        from_dict({"model": "m", "knots": [[-1, 5], [1, 100]]})
