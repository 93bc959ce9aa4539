"""A real boto3 client against a live `rekface serve`: every response is parsed by botocore."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def test_detect_faces(rekognition, photo):
    r = rekognition.detect_faces(Image={"Bytes": photo("groups/dlib_2008_001009.jpg")})
    assert len(r["FaceDetails"]) == 2
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["ResponseMetadata"]["RequestId"]


def test_compare_faces(rekognition, photo):
    r = rekognition.compare_faces(
        SourceImage={"Bytes": photo("identities/Paul_Bremer/12.jpg")},
        TargetImage={"Bytes": photo("groups/face_recognition_two_people.jpg")},
    )
    assert r["FaceMatches"] == [] and len(r["UnmatchedFaces"]) == 2
    r = rekognition.compare_faces(
        SourceImage={"Bytes": photo("identities/Paul_Bremer/12.jpg")},
        TargetImage={"Bytes": photo("identities/Paul_Bremer/5.jpg")},
        SimilarityThreshold=50,
        QualityFilter="AUTO",
    )
    assert r["FaceMatches"][0]["Similarity"] > 80


@pytest.mark.parametrize(
    "call,code",
    [
        (
            lambda c, p: c.detect_faces(Image={"Bytes": b"\x89PNG\r\n\x1a\n" + b"\0" * 64}),
            "InvalidImageFormatException",
        ),
        (
            lambda c, p: c.detect_faces(Image={"Bytes": b"GIF89a" * 100}),
            "InvalidImageFormatException",
        ),
        (
            lambda c, p: c.detect_faces(Image={"Bytes": b"\xff\xd8\xff" + b"\0" * (5 << 20)}),
            "ImageTooLargeException",
        ),
        (lambda c, p: c.detect_faces(Image={}), "InvalidParameterException"),
        (
            lambda c, p: c.detect_faces(
                Image={"Bytes": p("identities/Paul_Bremer/5.jpg")}, Attributes=["NOPE"]
            ),
            "InvalidParameterException",
        ),
        (
            lambda c, p: c.compare_faces(
                SourceImage={"Bytes": p("nofaces/skimage_rocket.jpg")},
                TargetImage={"Bytes": p("identities/Paul_Bremer/5.jpg")},
            ),
            "InvalidParameterException",
        ),
        (
            lambda c, p: c.compare_faces(
                SourceImage={"Bytes": p("identities/Paul_Bremer/5.jpg")},
                TargetImage={"Bytes": p("identities/Paul_Bremer/5.jpg")},
                SimilarityThreshold=101,
            ),
            "InvalidParameterException",
        ),
    ],
)
def test_errors_are_the_services_and_4xx(rekognition, photo, call, code):
    with pytest.raises(ClientError) as info:
        call(rekognition, photo)
    err = info.value.response
    assert err["Error"]["Code"] == code
    assert err["Error"]["Message"]
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Modelled errors come back as the client's own exception classes.
    if code in rekognition.exceptions._code_to_exception:
        assert isinstance(info.value, getattr(rekognition.exceptions, code))


def test_concurrent_requests(server_url, photo):
    """8 clients at once on a server that runs one image operation per core and queues a few:
    the rest are throttled, and boto3's retries (as users have them) get every answer."""
    rekognition = boto3.client(
        "rekognition",
        endpoint_url=server_url,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 10}),
    )
    images = [
        photo(f)
        for f in (
            "identities/Paul_Bremer/5.jpg",
            "groups/dlib_2007_007763.jpg",
            "nofaces/dlib_dog.jpg",
            "groups/dlib_2008_001009.jpg",
        )
    ] * 4

    def count(data: bytes) -> int:
        return len(rekognition.detect_faces(Image={"Bytes": data})["FaceDetails"])

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(count, images))
    assert counts == [1, 7, 0, 2] * 4
