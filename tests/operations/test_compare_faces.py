"""CompareFaces on labelled pairs of real photos, and its error paths."""

import io

import pytest
from PIL import Image

from benchmarks.shared_faces import image_bytes, pairs
from rekface import operations
from rekface.errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
)
from rekface.spec.model import output_shape
from rekface.spec.validate import validate_shape

N_PAIRS = 100  # of each kind, the first in pairs.tsv's (random) order


def compare(ctx, a: bytes, b: bytes, **kw):
    request = {"SourceImage": {"Bytes": a}, "TargetImage": {"Bytes": b}, **kw}
    response = operations.run(ctx, "CompareFaces", request)
    validate_shape(output_shape("CompareFaces"), response)
    return response


def test_same_people_match_and_different_people_do_not_at_80(ctx):
    rows = pairs()
    same = [p for p in rows if p.same][:N_PAIRS]
    different = [p for p in rows if not p.same][:N_PAIRS]
    matched_same = sum(
        bool(compare(ctx, image_bytes(p.a), image_bytes(p.b))["FaceMatches"]) for p in same
    )
    matched_different = sum(
        bool(compare(ctx, image_bytes(p.a), image_bytes(p.b))["FaceMatches"]) for p in different
    )
    print(
        f"at Similarity 80: {matched_same}/{N_PAIRS} same-person pairs matched, "
        f"{matched_different}/{N_PAIRS} different-person pairs matched"
    )
    # On all 1,304 + 1,304 pairs (benchmarks/accuracy.py): 90.3 % and 0 of 1,304 since
    # Similarity 80 sits at a bound that holds on new people (issue 20 §1).
    assert matched_same >= 0.84 * N_PAIRS
    assert matched_different == 0


def test_response_shape(ctx, photo):
    a = photo("identities/Paul_Bremer/12.jpg")
    r = compare(ctx, a, photo("identities/Paul_Bremer/5.jpg"))
    assert set(r) == {"SourceImageFace", "FaceMatches", "UnmatchedFaces"}
    assert set(r["SourceImageFace"]) == {"BoundingBox", "Confidence"}
    (match,) = r["FaceMatches"]
    assert match["Similarity"] >= 80
    assert set(match["Face"]) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    assert r["UnmatchedFaces"] == []
    identical = compare(ctx, a, a)["FaceMatches"][0]["Similarity"]
    assert identical > 99.9


def test_threshold_splits_matches_and_unmatched(ctx, photo):
    group = photo("groups/face_recognition_two_people.jpg")
    r = compare(ctx, photo("groups/face_recognition_two_people.jpg"), group, SimilarityThreshold=0)
    assert len(r["FaceMatches"]) == 2 and r["UnmatchedFaces"] == []
    sims = [m["Similarity"] for m in r["FaceMatches"]]
    assert sims == sorted(sims, reverse=True) and sims[0] > 99.9 and sims[1] < 80
    r = compare(ctx, photo("groups/face_recognition_two_people.jpg"), group)
    assert len(r["FaceMatches"]) == 1 and len(r["UnmatchedFaces"]) == 1


def test_largest_source_face_is_used(ctx, photo):
    group = photo("groups/dlib_2007_007763.jpg")
    r = compare(ctx, group, group, SimilarityThreshold=99.9)
    # The best match is the source face itself: the largest face of the photo.
    best = r["FaceMatches"][0]["Face"]["BoundingBox"]
    boxes = [m["Face"]["BoundingBox"] for m in r["FaceMatches"]] + [
        f["BoundingBox"] for f in r["UnmatchedFaces"]
    ]
    assert best == r["SourceImageFace"]["BoundingBox"]
    assert best["Width"] * best["Height"] == max(b["Width"] * b["Height"] for b in boxes)


def test_no_face_in_source_is_an_error_and_in_target_is_empty(ctx, photo, faces_dir):
    cat = (faces_dir / "nofaces/skimage_chelsea.png").read_bytes()
    face = photo("identities/Paul_Bremer/5.jpg")
    with pytest.raises(InvalidParameterException, match="no faces in the source image"):
        compare(ctx, cat, face)
    r = compare(ctx, face, cat)
    assert r["FaceMatches"] == [] and r["UnmatchedFaces"] == []


def test_quality_filter_removes_small_faces(ctx, photo):
    # A face ~39 px wide passes LOW (16 px) but not HIGH (48 px) and then can't be the source.
    im = Image.open(io.BytesIO(photo("identities/Paul_Bremer/5.jpg"))).convert("RGB")
    canvas = Image.new("RGB", (400, 400), (128, 128, 128))
    canvas.paste(im.resize((100, 100)), (150, 150))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    small = buf.getvalue()
    assert compare(ctx, small, small, QualityFilter="LOW")["FaceMatches"]
    with pytest.raises(InvalidParameterException, match="quality filter"):
        compare(ctx, small, small, QualityFilter="HIGH")


def test_image_errors(ctx, photo):
    face = photo("identities/Paul_Bremer/5.jpg")
    with pytest.raises(ImageTooLargeException):
        compare(ctx, face + b"\0" * (5 * 1024 * 1024), face)
    with pytest.raises(InvalidImageFormatException):
        compare(ctx, face, b"GIF89a" + b"\0" * 100)
    with pytest.raises(InvalidParameterException, match="similarityThreshold"):
        compare(ctx, face, face, SimilarityThreshold=-1)
