"""The attribute stages' pre- and post-processing, exactly, without ONNX: crops and their maps back
to the image, the 68-point mirror table and Rekognition's landmark types, AgeRange and Gender
decisions, Emotions, linear classifiers, gaze geometry, the mesh's 3D head pose."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rekface.engine.attributes.age_gender import AgeRangeModel, gender
from rekface.engine.attributes.analyzer import AttributeParams, load_params
from rekface.engine.attributes.expression import EMOTION_TYPES, emotions
from rekface.engine.attributes.gaze import GazeModel, eye_direction, eye_offset, offset_angle
from rekface.engine.attributes.headpose import canonical_mesh, mesh_pose, pose_from_rotation
from rekface.engine.attributes.iris import lid_gap
from rekface.engine.attributes.landmarks68 import (
    MIRROR_68,
    REKOGNITION_FROM_68,
    aligned_square,
    decode,
    rekognition_landmarks,
)
from rekface.engine.attributes.linear import LinearClassifier, binary_from_logit
from rekface.engine.attributes.mesh import eye_openness, mouth_openness
from rekface.engine.attributes.regions import region_features
from rekface.engine.crops import crop_matrix, eye_line_angle, rotate_points, square_crop
from rekface.spec.model import output_shape

# ------------------------------------------------------------------------------------- crops


def test_crop_matrix_maps_crop_centre_to_centre_and_scales_by_side():
    m = crop_matrix(np.array([50.0, 40.0]), side=100.0, angle=0.0, size=50)
    np.testing.assert_allclose(m @ [25, 25, 1], [50, 40])
    np.testing.assert_allclose(m @ [0, 0, 1], [0, -10])
    np.testing.assert_allclose(m @ [50, 50, 1], [100, 90])


def test_crop_matrix_turns_clockwise_on_screen_by_angle():
    # A crop turned by +90 degrees: its x axis points down the image.
    m = crop_matrix(np.array([0.0, 0.0]), side=10.0, angle=math.pi / 2, size=10)
    np.testing.assert_allclose(m[:, :2] @ [1, 0], [0, 1], atol=1e-12)


def test_square_crop_samples_the_right_pixels_and_fills_outside_with_zeros():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[10:20, 30:40] = 200  # a bright 10x10 square centred at (35, 15)
    crop = square_crop(rgb, np.array([35.0, 15.0]), side=20.0, angle=0.0, size=20)
    assert crop.pixels.shape == (20, 20, 3)
    assert crop.pixels[5:15, 5:15].mean() == pytest.approx(200, abs=1)
    assert crop.pixels[0:3].mean() == pytest.approx(0, abs=1)
    # A square hanging off the image's top-left corner: zeros where there is no image.
    corner = square_crop(rgb + 50, np.array([0.0, 0.0]), side=20.0, angle=0.0, size=20)
    assert corner.pixels[:9, :9].max() == 0
    assert corner.pixels[11:, 11:].min() >= 49


def test_square_crop_point_maps_are_inverse_and_account_for_mirroring():
    rgb = np.random.default_rng(0).integers(0, 255, (100, 120, 3), np.uint8)
    for mirror in (False, True):
        crop = square_crop(rgb, np.array([60.0, 50.0]), 40.0, 0.3, 64, mirror=mirror)
        pts = np.array([[1.0, 2.0], [30.0, 50.0], [63.0, 10.0]])
        np.testing.assert_allclose(crop.points_from_image(crop.points_to_image(pts)), pts)
        assert crop.scale == pytest.approx(40 / 64)
    plain = square_crop(rgb, np.array([60.0, 50.0]), 40.0, 0.0, 64)
    flipped = square_crop(rgb, np.array([60.0, 50.0]), 40.0, 0.0, 64, mirror=True)
    np.testing.assert_allclose(flipped.pixels, plain.pixels[:, ::-1], atol=1e-3)
    # Crop point x maps where the plain crop's point (64 - x) does.
    np.testing.assert_allclose(
        flipped.points_to_image(np.array([[10.0, 5.0]])),
        plain.points_to_image(np.array([[54.0, 5.0]])),
    )


def test_square_crop_of_a_large_face_is_antialiased():
    # A fine checkerboard (period 2 px) shrunk 10x must read as its mean grey, not alias.
    rgb = ((np.indices((400, 400)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)
    crop = square_crop(rgb, np.array([200.0, 200.0]), 300.0, 0.0, 30)
    assert crop.pixels.std() < 12
    assert crop.pixels.mean() == pytest.approx(127.5, abs=6)


def test_eye_line_angle_and_rotate_points():
    assert eye_line_angle(np.array([0.0, 0.0]), np.array([10.0, 10.0])) == pytest.approx(
        math.pi / 4
    )
    p = rotate_points(np.array([[2.0, 1.0]]), np.array([1.0, 1.0]), math.pi / 2)
    np.testing.assert_allclose(p, [[1.0, 2.0]], atol=1e-12)


# ------------------------------------------------------------------------------- 68 landmarks


def test_mirror_68_is_a_left_right_involution():
    assert sorted(MIRROR_68.tolist()) == list(range(68))
    assert (MIRROR_68[MIRROR_68] == np.arange(68)).all()
    # Twins named in landmarks68's docstring: jaw ends, eye corners, mouth corners.
    assert (MIRROR_68[[0, 8, 36, 39, 48, 51, 62]] == [16, 8, 45, 42, 54, 51, 62]).all()


def test_decode_maps_unit_square_outputs_into_the_image():
    crop = square_crop(np.zeros((200, 200, 3), np.uint8), np.array([100.0, 80.0]), 56.0, 0.0, 112)
    raw = np.tile([0.5, 0.5], 68)
    np.testing.assert_allclose(decode(raw, crop), np.tile([100.0, 80.0], (68, 1)))


def test_aligned_square_is_face_apis_padded_landmark_box():
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(10, 110, 68)  # 100 wide
    pts[:, 1] = np.linspace(20, 70, 68)  # 50 tall
    centre, side = aligned_square(pts, 0.0)
    np.testing.assert_allclose(centre, [60, 45])
    assert side == pytest.approx(120.0)  # the larger side, padded by 20 %


def test_rekognition_landmarks_are_means_of_their_ibug_points():
    pts = np.stack([np.arange(68, dtype=float), np.arange(68, dtype=float) * 2], 1)
    lm = rekognition_landmarks(pts)
    assert lm["leftEyeUp"] == (37.5, 75.0)
    assert lm["chinBottom"] == (8.0, 16.0)
    assert lm["rightEyeBrowRight"] == (26.0, 52.0)
    # With the 5 main ones (detector) and two pupils (iris net), all 30 types of the API.
    enum = set(output_shape("DetectFaces").members["FaceDetails"].member.members["Landmarks"]
               .member.members["Type"].enum)  # fmt: skip
    main = {"eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight", "leftPupil", "rightPupil"}
    assert set(REKOGNITION_FROM_68) | main == enum
    assert len(enum) == 30


# ------------------------------------------------------------------------- age, gender, emotions


def test_age_range_is_integer_ordered_clamped_and_widens_with_age():
    model = AgeRangeModel(bias=-1.0, base=5.0, slope=0.1)
    young, old = model.range(20.0), model.range(60.0)
    assert (young.low, young.high) == (12, 26)  # 19 -/+ 7
    assert (old.low, old.high) == (48, 70)  # 59 -/+ 11
    assert model.range(1.0).low == 0
    assert model.range(150.0).high == 100


def test_gender_confidence_is_fifty_at_the_threshold_and_symmetric_in_log_odds():
    assert gender(0.3, 0.3).confidence == pytest.approx(50.0)
    assert gender(0.9, 0.3).value == "Female"
    assert gender(0.1, 0.3).value == "Male"
    # Same log-odds distance from the threshold on both sides -> same confidence.
    t = 0.3
    z = math.log(t / (1 - t))
    up = 1 / (1 + math.exp(-(z + 2)))
    down = 1 / (1 + math.exp(-(z - 2)))
    assert gender(up, t).confidence == pytest.approx(gender(down, t).confidence)
    assert gender(up, t).confidence == pytest.approx(100 / (1 + math.exp(-2)))


def test_emotions_map_the_seven_net_classes_most_likely_first_without_confused():
    probs = np.array([0.1, 0.6, 0.05, 0.05, 0.1, 0.05, 0.05])
    out = emotions(probs)
    assert [e.value for e in out][:2] == ["HAPPY", "CALM"]
    assert {e.value for e in out} == set(EMOTION_TYPES)
    assert "CONFUSED" not in EMOTION_TYPES
    assert sum(e.confidence for e in out) == pytest.approx(100.0)


# --------------------------------------------------------------------------- linear classifiers


def test_linear_classifier_standardises_and_decides_on_the_logit_sign():
    clf = LinearClassifier(
        features=("a", "b"),
        mean=np.array([1.0, 0.0]),
        scale=np.array([2.0, 1.0]),
        weights=np.array([1.0, -1.0]),
        bias=0.5,
        temperature=2.0,
    )
    assert clf.logit({"a": 3.0, "b": 1.0}) == pytest.approx(0.5)  # (3-1)/2 - 1 + 0.5
    out = clf.decide({"a": 3.0, "b": 1.0})
    assert out.value is True
    assert out.confidence == pytest.approx(100 / (1 + math.exp(-1.0)))
    assert clf.decide({"a": 1.0, "b": 2.0}).value is False


def test_binary_confidence_is_between_50_and_100_and_grows_with_the_margin():
    confs = [binary_from_logit(z).confidence for z in (0.0, 0.5, 2.0, -2.0, 8.0)]
    assert confs[0] == 50.0
    assert confs[0] < confs[1] < confs[2] < confs[4] <= 100
    assert confs[2] == confs[3]


# ------------------------------------------------------------------------------------ geometry


def _eye(height: float) -> np.ndarray:
    """An iris-net eye contour: corners at x 0 and 20, lids at +-height/2."""
    c = np.zeros((71, 2))
    xs = np.linspace(0, 20, 9)
    c[0:9, 0] = xs
    c[1:8, 1] = height / 2  # lower lid (down is +y)
    c[9:16, 0] = xs[1:8]
    c[9:16, 1] = -height / 2
    return c


def test_lid_gap_is_the_eye_aspect_ratio():
    assert lid_gap(_eye(6.0)) == pytest.approx(0.3)
    assert lid_gap(_eye(1.0)) == pytest.approx(0.05)


def test_mesh_openness_ratios():
    m = np.zeros((468, 3))
    m[61, :2], m[291, :2] = (0, 0), (50, 0)  # mouth corners
    for a, b in ((13, 14), (82, 87), (312, 317)):
        m[a, :2], m[b, :2] = (25, -5), (25, 5)
    assert mouth_openness(m) == pytest.approx(0.2)
    m[33, :2], m[133, :2], m[263, :2], m[362, :2] = (0, 0), (30, 0), (100, 0), (70, 0)
    for a, b in ((159, 145), (158, 153), (160, 144), (386, 374), (385, 380), (387, 373)):
        m[a, :2], m[b, :2] = (0, -3), (0, 3)
    assert eye_openness(m) == pytest.approx((0.2, 0.2))


def test_gaze_offsets_and_signs():
    # Pupil a quarter eye width right of the corners' midpoint, on a level face.
    h, v = eye_offset(np.array([15.0, 0.0]), np.array([0.0, 0.0]), np.array([20.0, 0.0]), 0.0)
    assert (h, v) == pytest.approx((0.5, 0.0))
    # The same eye on a face turned 90 degrees clockwise: "right along the eye line" is down.
    h, v = eye_offset(
        np.array([0.0, 15.0]), np.array([0.0, 0.0]), np.array([0.0, 20.0]), math.pi / 2
    )
    assert (h, v) == pytest.approx((0.5, 0.0))
    model = GazeModel(zero_h=0.0, zero_v=0.0, spread=10.0)
    right_up = eye_direction([(0.3, -0.2), (0.3, -0.2)], model)
    assert right_up.yaw > 0 and right_up.pitch > 0  # towards the image's right, and up
    assert right_up.yaw == pytest.approx(offset_angle(0.3))
    assert right_up.confidence == pytest.approx(100.0)
    assert offset_angle(0.8) == pytest.approx(90.0)  # 0.8 * 1.25 = sin(90 degrees)
    split = eye_direction([(0.3, 0.0), (0.1, 0.0)], model)
    assert split.confidence < right_up.confidence
    disagreement = offset_angle(0.3) - offset_angle(0.1)
    assert split.confidence == pytest.approx(100 * 2 ** (-disagreement / 10))


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-frame rotation (x right, y down, z away) of a head: yaw turns the nose towards the
    image's right, pitch raises it, roll turns the face clockwise on screen."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def test_pose_from_rotation_reads_the_conventions():
    for yaw, pitch, roll in ((30, 0, 0), (0, 20, 0), (0, 0, 15), (-25, -10, 5)):
        p = pose_from_rotation(_rotation(yaw, pitch, roll))
        if pitch == 0 and roll == 0:
            assert p.yaw == pytest.approx(yaw)
        if yaw == 0 and roll == 0:
            assert p.pitch == pytest.approx(pitch)
        if yaw == 0 and pitch == 0:
            assert p.roll == pytest.approx(roll)
        assert math.copysign(1, p.yaw) == math.copysign(1, yaw) or yaw == 0


def test_mesh_pose_recovers_a_rotation_of_the_canonical_mesh_with_scale_and_shift():
    c = canonical_mesh()
    p = mesh_pose(c)
    assert (p.roll, p.yaw, p.pitch) == pytest.approx((0, 0, 0), abs=1e-6)
    for yaw, pitch in ((20, 0), (0, -10), (35, 15)):
        r = _rotation(yaw, pitch, 0)
        p = mesh_pose(57.0 * c @ r.T + [300, 200, 5])
        # Yaw and Pitch are the angles of the direction the face points (its forward axis).
        forward = r @ [0, 0, -1]
        assert p.yaw == pytest.approx(math.degrees(math.asin(forward[0])), abs=1e-6)
        assert p.pitch == pytest.approx(math.degrees(math.asin(-forward[1])), abs=1e-6)
        if pitch == 0:
            assert p.yaw == pytest.approx(yaw, abs=1e-6)
        if yaw == 0:
            assert p.pitch == pytest.approx(pitch, abs=1e-6)


def test_mesh_pose_of_a_mirror_image_negates_yaw_and_roll():
    import json

    from rekface.engine.attributes.headpose import CANONICAL_FILE

    twin = np.array(json.loads(CANONICAL_FILE.read_text())["mirror_twin"])
    face = 40.0 * canonical_mesh() @ _rotation(25, 8, 12).T
    mirrored = face[twin].copy()
    mirrored[:, 0] = -mirrored[:, 0]
    a, b = mesh_pose(face), mesh_pose(mirrored)
    assert b.yaw == pytest.approx(-a.yaw, abs=1e-6)
    assert b.roll == pytest.approx(-a.roll, abs=1e-6)
    assert b.pitch == pytest.approx(a.pitch, abs=1e-6)


# ----------------------------------------------------------------------------------- regions


def test_region_features_see_dark_lenses_and_dark_chins():
    rng = np.random.default_rng(0)
    pts = np.zeros((68, 2))
    pts[0:17, 0] = np.linspace(10, 102, 17)  # jaw, ear to ear
    pts[0:17, 1] = np.concatenate([np.linspace(40, 100, 9), np.linspace(92, 40, 8)])
    pts[17:27] = np.column_stack([np.linspace(25, 87, 10), np.full(10, 30)])  # brows
    pts[27:31] = np.column_stack([np.full(4, 56), np.linspace(40, 62, 4)])  # nose bridge
    pts[31:36] = np.column_stack([np.linspace(48, 64, 5), np.full(5, 66)])  # nose bottom
    pts[36:42] = np.column_stack([[30, 35, 40, 45, 40, 35], [42, 40, 40, 42, 44, 44]])
    pts[42:48] = np.column_stack([[67, 72, 77, 82, 77, 72], [42, 40, 40, 42, 44, 44]])
    pts[48:60] = np.column_stack([np.linspace(40, 72, 12), np.full(12, 78)])
    pts[[50, 51, 52]] = [[50, 75], [56, 74], [62, 75]]
    pts[57] = [56, 84]
    pts[60:68] = np.column_stack([np.linspace(44, 68, 8), np.full(8, 79)])
    skin = np.full((112, 112, 3), [200.0, 150.0, 120.0]) + rng.normal(0, 3, (112, 112, 3))
    base = region_features(skin, pts)
    lenses = skin.copy()
    lenses[34:50, 26:50] = 30
    lenses[34:50, 63:87] = 30
    chin = skin.copy()
    chin[86:100, 40:72] = 60
    assert region_features(lenses, pts)["eyes_dark"] > base["eyes_dark"] + 1.0
    assert region_features(chin, pts)["chin_dark"] > base["chin_dark"] + 0.5
    assert abs(base["eyes_dark"]) < 0.05 and abs(base["chin_dark"]) < 0.05


# ----------------------------------------------------------------------------- shipped params


def test_shipped_params_parse_and_only_ship_what_measured_well_enough():
    raw = load_params.__wrapped__()  # the file as shipped, not a cached copy
    assert isinstance(raw, AttributeParams)
    members = raw.members()
    assert {"Emotions", "Gender", "AgeRange", "Smile", "MouthOpen", "EyesOpen"} <= members
    import json

    from rekface.engine.attributes.analyzer import PARAMS_FILE

    measured = json.loads(PARAMS_FILE.read_text())["measured"]["binary"]
    for member in ("Eyeglasses", "Sunglasses", "Beard", "Mustache", "FaceOccluded"):
        ships = member in members
        assert ships == (measured[member]["nested_cv_balanced_accuracy"] >= 0.90), member
