"""Request validation against the botocore model: the server-side rules botocore leaves out."""

import pytest

from rekface.errors import InvalidParameterException
from rekface.spec.model import output_shape
from rekface.spec.validate import validate_request, validate_shape

IMAGE = {"Bytes": b"\xff\xd8\xff"}


def error_of(operation, request):
    with pytest.raises(InvalidParameterException) as info:
        validate_request(operation, request)
    return info.value.message


def test_valid_requests_pass():
    validate_request("DetectFaces", {"Image": IMAGE, "Attributes": ["ALL"]})
    validate_request(
        "CompareFaces",
        {
            "SourceImage": IMAGE,
            "TargetImage": IMAGE,
            "SimilarityThreshold": 0,
            "QualityFilter": "HIGH",
        },
    )
    validate_request("CreateCollection", {"CollectionId": "a.b-c_D", "Tags": {"k": "v"}})


def test_missing_required_member():
    msg = error_of("DetectFaces", {})
    assert msg == (
        "1 validation error detected: Value 'None' at 'image' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_pattern_and_length_in_service_format():
    msg = error_of("CreateCollection", {"CollectionId": "has space"})
    assert "Value 'has space' at 'collectionId'" in msg
    assert "Member must satisfy regular expression pattern: [a-zA-Z0-9_.\\-]+" in msg
    msg = error_of("CreateCollection", {"CollectionId": "x" * 256})
    assert "Member must have length less than or equal to 255" in msg


def test_enum_range_and_type():
    assert "enum value set" in error_of("DetectFaces", {"Image": IMAGE, "Attributes": ["NOSE"]})
    msg = error_of(
        "CompareFaces", {"SourceImage": IMAGE, "TargetImage": IMAGE, "SimilarityThreshold": 100.5}
    )
    assert "at 'similarityThreshold'" in msg and "less than or equal to 100" in msg
    assert "Member must be an integer" in error_of(
        "SearchFacesByImage", {"CollectionId": "c", "Image": IMAGE, "MaxFaces": "5"}
    )
    assert "Member must be a number" in error_of(
        "CompareFaces", {"SourceImage": IMAGE, "TargetImage": IMAGE, "SimilarityThreshold": True}
    )


def test_nested_paths_and_several_errors_reported_together():
    msg = error_of(
        "DetectFaces",
        {"Image": {"S3Object": {"Bucket": "a b", "Name": ""}}, "Attributes": ["X"]},
    )
    assert msg.startswith("3 validation errors detected: ")
    assert "at 'image.s3Object.bucket'" in msg and "at 'image.s3Object.name'" in msg


def test_list_members_and_list_length():
    msg = error_of("DeleteFaces", {"CollectionId": "c", "FaceIds": ["not-a-uuid"]})
    assert "at 'faceIds'" in msg and "Member must satisfy constraint: [Member must satisfy" in msg
    assert "length greater than or equal to 1" in error_of(
        "DeleteFaces", {"CollectionId": "c", "FaceIds": []}
    )


def test_image_bytes_maximum_is_left_to_the_operation():
    # Over 5 MB is ImageTooLargeException (raised when the image is read), not a validation error.
    validate_request("DetectFaces", {"Image": {"Bytes": b"x" * (5 * 1024 * 1024 + 1)}})


def test_tag_patterns_use_unicode_classes():
    validate_request("TagResource", {"ResourceArn": "a" * 20, "Tags": {"Équipe 1": "café ½"}})
    msg = error_of("TagResource", {"ResourceArn": "a" * 20, "Tags": {"aws:x": "v"}})
    assert "at 'tags.key'" in msg
    assert "at 'tags.k'" in error_of("TagResource", {"ResourceArn": "a" * 20, "Tags": {"k": "<"}})


def test_unknown_members_and_nulls_are_ignored():
    validate_request("DetectFaces", {"Image": IMAGE, "Attributes": None, "Extra": 1})


def test_output_shapes_can_be_checked_too():
    validate_shape(output_shape("CompareFaces"), {"FaceMatches": [{"Similarity": 99.0}]})
    with pytest.raises(InvalidParameterException):
        validate_shape(output_shape("CompareFaces"), {"FaceMatches": [{"Similarity": 101.0}]})


@pytest.mark.parametrize(
    "operation,request_",
    [
        ("DeleteFaces", {"CollectionId": "c", "FaceIds": ["x"] * 10_000}),
        ("CreateCollection", {"CollectionId": "é" * 1_000_000}),
        ("DeleteFaces", {"CollectionId": "a b" * 10_000, "FaceIds": [["x"] * 1000] * 1000}),
        ("TagResource", {"ResourceArn": "a", "Tags": dict([("k" * 10_000, "v" * 10_000)])}),
        ("SearchFaces", {"CollectionId": "c", "FaceId": "f", "MaxFaces": 10**5000}),
    ],
)
def test_a_message_stays_small_whatever_the_request(operation, request_):
    """Every violation is counted, a few are spelled out, echoed values are cut: the message is
    under 2 KB and its making is linear in the request (10,000 bad FaceIds are one violation)."""
    with pytest.raises(InvalidParameterException) as err:
        validate_request(operation, request_)
    assert len(err.value.message.encode()) <= 2048
    assert "validation error" in err.value.message
