"""Alignment and pose: exact geometric properties."""

import numpy as np
import pytest

from rekface.engine.align import TEMPLATE_150, face_chip, similarity, warp_affine
from rekface.engine.pose import MODEL_3D, estimate_pose


def rotation(deg):
    r = np.radians(deg)
    return np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])


def test_similarity_recovers_a_known_transform():
    src = TEMPLATE_150 + 3.0
    dst = 1.7 * src @ rotation(25).T + [10.0, -4.0]
    m = similarity(src, dst)
    np.testing.assert_allclose(src @ m[:, :2].T + m[:, 2], dst, atol=1e-9)


def test_warp_samples_pixel_centres_bilinearly_with_replicated_edges():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    shift = np.array([[1.0, 0.0, -5.0], [0.0, 1.0, -7.0]])  # out(x, y) = in(x + 5, y + 7)
    out = warp_affine(img, shift, 20)
    np.testing.assert_array_equal(out, img[7:27, 5:25].astype(np.float32))
    half = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]])  # halfway between two columns
    out = warp_affine(img, half, 10)
    expected = (img[:10, :10].astype(np.float32) + img[:10, 1:11]) / 2
    assert np.abs(out - expected).max() <= 1.0  # Pillow rounds to 8 bits
    far = np.array([[1.0, 0.0, 100.0], [0.0, 1.0, 100.0]])  # entirely left of / above the image
    np.testing.assert_array_equal(warp_affine(img, far, 4), np.broadcast_to(img[0, 0], (4, 4, 3)))


def test_chip_puts_the_landmarks_on_the_template():
    # A synthetic image whose 5 "landmarks" are bright dots; the chip must move them onto the
    # template, whatever the face's size (also through the antialiased shrink path).
    for scale in (0.5, 1.0, 4.0):
        pts = TEMPLATE_150 * scale @ rotation(10).T + [20.0, 30.0]
        size = int(pts.max() + 40)
        img = np.zeros((size, size, 3), np.uint8)
        r = max(1, round(1.5 * scale))  # a dot of about 3 px once in the chip
        for x, y in np.round(pts).astype(int):
            img[y - r : y + r + 1, x - r : x + r + 1] = 255
        chip = face_chip(img, pts)
        for x, y in TEMPLATE_150:
            assert chip[round(y), round(x)].mean() > 150, (scale, x, y)
        assert chip.mean() < 40  # and nothing else is bright


def project(yaw=0.0, pitch=0.0, roll=0.0, scale=2.0):
    """Orthographic image of the generic 3D model turned by the given angles."""
    y, p = np.radians([yaw, pitch])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    pts = (MODEL_3D @ (ry @ rx).T)[:, :2] * scale
    return pts @ rotation(roll).T + [200.0, 200.0]


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (20, 0, 0), (-35, 10, 5), (10, -15, -20)])
def test_pose_recovers_angles_of_the_model(yaw, pitch, roll):
    pose = estimate_pose(project(yaw, pitch, roll))
    assert pose.yaw == pytest.approx(yaw, abs=0.5)
    assert pose.pitch == pytest.approx(pitch, abs=0.5)
    assert pose.roll == pytest.approx(roll, abs=0.5)


def test_pose_signs_follow_the_mirror():
    pts = project(25, 8, 12)
    mirrored = pts.copy()
    mirrored[:, 0] = 400 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # the detector names points by image side
    a, b = estimate_pose(pts), estimate_pose(mirrored)
    assert b.yaw == pytest.approx(-a.yaw, abs=1e-6)
    assert b.roll == pytest.approx(-a.roll, abs=1e-6)
    assert b.pitch == pytest.approx(a.pitch, abs=1e-6)
    # Positive yaw = nose towards the image's right, as in AWS's examples; positive pitch = the
    # face looks up (the nose rises towards the eyes).
    assert a.yaw > 0 and pts[2, 0] > pts[:2, 0].mean()
    level = project(0, 0, 0)
    up = project(0, 15, 0)
    assert estimate_pose(up).pitch > 0
    assert up[2, 1] - up[:2, 1].mean() < level[2, 1] - level[:2, 1].mean()
