"""RetinaFace pre/post-processing as pure functions, checked exactly without the model."""

import numpy as np

from rekface.engine.detect import (
    DetectorConfig,
    decode,
    nms,
    plausible_landmarks,
    preprocess,
    priors,
)


def test_prior_layout_matches_the_graph():
    p = priors(64, 96)
    # 2 sizes per cell at strides 8, 16, 32.
    assert len(p) == 2 * (8 * 12 + 4 * 6 + 2 * 3)
    # First cell of stride 8: centre (4, 4), sizes 16 and 32; order row, column, size.
    np.testing.assert_allclose(p[0], [4, 4, 16, 16])
    np.testing.assert_allclose(p[1], [4, 4, 32, 32])
    np.testing.assert_allclose(p[2], [12, 4, 16, 16])
    last_stride32 = p[-1]
    np.testing.assert_allclose(last_stride32, [80, 48, 512, 512])


def test_preprocess_pads_to_multiples_of_32_with_the_mean():
    rgb = np.zeros((50, 70, 3), np.uint8)
    rgb[..., 0] = 200  # red
    x = preprocess(rgb)
    assert x.shape == (1, 3, 64, 96)
    # BGR order minus (104, 117, 123): red lands in channel 2.
    assert x[0, 2, 0, 0] == 200 - 123 and x[0, 0, 0, 0] == -104
    assert x[0, :, 60, 90].tolist() == [0, 0, 0]  # padding = mean colour


def test_decode_inverts_the_prior_encoding():
    h, w = 64, 64
    p = priors(h, w)
    n = len(p)
    loc = np.zeros((n, 4), np.float32)
    conf = np.zeros((n, 2), np.float32)
    lms = np.zeros((n, 10), np.float32)
    i = 5  # a stride-8 prior
    cx, cy, s, _ = p[i]
    loc[i] = [1.0, -2.0, np.log(1.5) / 0.2, 0.0]  # centre offset, width x1.5, height x1
    conf[i] = [0.05, 0.95]
    lms[i] = [0.5] * 10
    out = decode(loc, conf, lms, (h, w), DetectorConfig())
    assert len(out) == 1
    ecx, ecy = cx + 1.0 * 0.1 * s, cy - 2.0 * 0.1 * s
    np.testing.assert_allclose(
        out.boxes[0], [ecx - 0.75 * s, ecy - 0.5 * s, ecx + 0.75 * s, ecy + 0.5 * s], rtol=1e-5
    )
    np.testing.assert_allclose(out.points[0], np.full((5, 2), [cx + 0.05 * s, cy + 0.05 * s]))
    assert abs(out.scores[0] - 0.95) < 1e-6


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2]


FACE = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)


def test_plausible_landmarks():
    assert plausible_landmarks(FACE)
    c, s = np.cos(np.radians(40)), np.sin(np.radians(40))
    assert plausible_landmarks(FACE @ np.array([[c, s], [-s, c]]))  # rolled face
    upside = FACE.copy()
    upside[2, 1] = 20  # nose above the eyes, as on the dog the detector scored 0.81
    assert not plausible_landmarks(upside)
    swapped = FACE.copy()
    swapped[[3, 4]] = swapped[[4, 3]]
    assert not plausible_landmarks(swapped)
