"""The rekface side of benchmarks/peers runs without the peer (face_recognition is only in
.venv-peers): on a handful of real photos, the comparison and the detector table produce the
numbers the README reports, and the pieces they rest on (ONNX edit, metrics, face choice) are
right on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.peers.compare import (
    Cosine,
    central_index,
    cross_identity_negatives,
    largest_index,
    make_sample,
    render,
    run,
    tenfold_accuracy,
    tmr_at_fmr,
)
from benchmarks.peers.detectors import SHARED_MODELS
from benchmarks.peers.onnx_wire import prepare_model

TWO = "groups/face_recognition_two_people.jpg"
SEVEN = "groups/dlib_2007_007763.jpg"  # face_count 7 in SOURCES.tsv
DOGS = "nofaces/dlib_dogs.jpg"


@pytest.fixture(scope="module")
def report():
    sample = make_sample(8, groups=[TWO, SEVEN], nofaces=[DOGS], latency_singles=2)
    return run(sample, threads=1, peer=False, repeats=1)


def test_rekface_side_runs_without_the_peer(report) -> None:
    assert list(report.verification) == ["rekface (1 thread)"]
    v = report.verification["rekface (1 thread)"]["central"]
    assert v.photos == 16 and v.no_face == 0
    # The first 4 same-person and 4 different-person pairs of pairs.tsv are all decided right at
    # CompareFaces' default threshold, and no different-person pair among the 16 photos scores
    # above a same-person pair at FMR 1e-3.
    assert v.default_accuracy == 1.0
    assert v.big_negatives > 100 and v.tmr_big_1e3 == 1.0
    det = report.detection["rekface (1 thread)"]
    assert (det.found(TWO), det.found(SEVEN), det.false_positives()) == (2, 7, 0)
    assert set(report.latency) and all(
        lat[name].p50_ms > 0 for lat in report.latency.values() for name in lat
    )
    table = render(report)
    assert "| verification accuracy, 10-fold (labelled face) |" in table
    assert "|  | rekface (1 thread) |" in table.splitlines()  # no peer column


def test_detector_table_runs_every_detector(report) -> None:
    names = [r.name.split(" ")[0] for r in report.detectors]
    assert names == ["RetinaFace-mnet0.25", "YuNet", "UltraFace", "UltraFace", "CenterFace"]
    for r in report.detectors:
        # Both faces of the two-people photo at each detector's own default threshold.
        assert r.detection.found(TWO, r.threshold) == 2, r.name
        assert r.photos_with_face == 16, r.name
        assert (r.verification is None) == r.name.startswith("UltraFace")
    # Through rekface's own detector, the table's verification is the engine's pipeline.
    retina = report.detectors[0]
    assert retina.name.startswith("RetinaFace") and retina.verification is not None
    engine_v = report.verification["rekface (1 thread)"]["central"]
    assert retina.verification.default_accuracy == engine_v.default_accuracy


def test_centerface_with_freed_dims_matches_the_packaged_graph() -> None:
    data = (SHARED_MODELS / "centerface_bnmerged.onnx").read_bytes()
    freed = prepare_model(
        data,
        {
            "input.1": [1, 3, "h", "w"],
            **{k: [1, c, "h4", "w4"] for k, c in (("537", 1), ("538", 2), ("539", 2), ("540", 10))},
        },
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    fixed = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    free = ort.InferenceSession(freed, options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 255, (10, 3, 32, 32)).astype(np.float32)
    ref = fixed.run(None, {"input.1": x})
    got = [
        np.concatenate(z)
        for z in zip(*[free.run(None, {"input.1": x[i : i + 1]}) for i in range(10)], strict=True)
    ]
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    heat = free.run(["537"], {"input.1": np.zeros((1, 3, 160, 224), np.float32)})[0]
    assert heat.shape == (1, 1, 40, 56)
    # Initializers are no longer graph inputs: the only input left is the image.
    assert [i.name for i in free.get_inputs()] == ["input.1"]


def test_metrics_on_known_scores() -> None:
    same = np.array([True] * 10 + [False] * 10)
    folds = np.arange(20) % 10
    separable = np.r_[np.linspace(0.8, 0.9, 10), np.linspace(0.1, 0.5, 10)]
    assert tenfold_accuracy(separable, same, folds) == (1.0, 0.0)
    assert tmr_at_fmr(separable[same], separable[~same], 1e-3) == 1.0
    # One different-person pair above every same-person pair: at FMR 1e-3 of 10 negatives the
    # threshold is that pair's score, so nothing passes; at FMR 0.1 the next one is the bar.
    overlap = separable.copy()
    overlap[19] = 0.95
    assert tmr_at_fmr(overlap[same], overlap[~same], 1e-3) == 0.0
    assert tmr_at_fmr(overlap[same], overlap[~same], 0.1) == 1.0
    # A pair with a missing face scores -inf: always "different", never a false match.
    missing = separable.copy()
    missing[0] = -np.inf
    assert tmr_at_fmr(missing[same], missing[~same], 1e-3) == 0.9


def test_cross_identity_negatives_skip_same_and_aliased_people() -> None:
    e = np.eye(4)
    emb = {
        "identities/A/1.jpg": e[0],
        "identities/A/2.jpg": e[1],
        "identities/Matt_Damon/1.jpg": e[2],
        "identities/deepface_person_3/1.jpg": e[3],
    }
    # 6 pairs: A-A is the same person, Matt_Damon vs deepface_person_* may be too: 4 remain.
    assert len(cross_identity_negatives(Cosine(), emb)) == 4


def test_labelled_face_is_central_and_largest_counts_only_the_visible_part() -> None:
    # A 150x150 crop: a central face, and a bigger face cut by the right edge.
    boxes = np.array([[45.0, 40.0, 105.0, 110.0], [120.0, 20.0, 230.0, 160.0]])
    assert central_index(boxes, 150, 150) == 0
    assert largest_index(boxes, 150, 150) == 0  # only 30x130 of the second is in the image
    boxes[1, 0] = 70.0  # now 80x130 visible: larger than the central face's 60x70
    assert largest_index(boxes, 150, 150) == 1
