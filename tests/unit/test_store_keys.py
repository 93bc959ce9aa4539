"""ARNs, ids and pagination tokens (rekface.stores.keys)."""

from __future__ import annotations

import random
import string
import uuid

import pytest

from rekface.errors import (
    InvalidPaginationTokenException,
    InvalidParameterException,
    ResourceNotFoundException,
)
from rekface.stores import keys


def test_collection_arn_round_trip():
    arn = keys.collection_arn("eu-west-1", "123456789012", "my.photos-1")
    assert arn == "aws:rekognition:eu-west-1:123456789012:collection/my.photos-1"
    for form in (arn, "arn:" + arn):
        assert keys.collection_id_from_arn(form, "eu-west-1", "123456789012") == "my.photos-1"
    with pytest.raises(ResourceNotFoundException):
        keys.collection_id_from_arn(arn, "us-east-1", "123456789012")
    with pytest.raises(ResourceNotFoundException):
        keys.collection_id_from_arn(arn, "eu-west-1", "000000000000")
    with pytest.raises(ResourceNotFoundException, match="collections only"):
        keys.collection_id_from_arn(
            "arn:aws:rekognition:eu-west-1:123456789012:streamprocessor/sp", "eu-west-1", "1"
        )
    with pytest.raises(InvalidParameterException):
        keys.collection_id_from_arn("arn:aws:s3:::bucket", "eu-west-1", "123456789012")


def test_ids_are_deterministic_uuids():
    inc = keys.new_incarnation()
    digest = keys.pixels_digest(b"\1\2\3", (1, 1, 3))
    image = keys.image_id(inc, digest, "ext")
    assert image == keys.image_id(inc, digest, "ext")
    assert image != keys.image_id(inc, digest, None)
    assert image != keys.image_id(keys.new_incarnation(), digest, "ext")
    assert keys.pixels_digest(b"\1\2\3", (1, 1, 3)) != keys.pixels_digest(b"\1\2\3", (3, 1, 1))
    faces = [keys.face_id(image, r) for r in range(3)]
    assert len(set(faces)) == 3 and all(uuid.UUID(f).version == 5 for f in faces)


@pytest.mark.parametrize("seed", range(5))
def test_packed_ids_round_trip(seed):
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "_.-"
    for n in (1, 2, 17, 255):
        cid = "".join(rng.choice(alphabet) for _ in range(n))
        assert keys.unpack_collection_id(keys.pack_collection_id(cid)) == cid
        uid = "".join(rng.choice(alphabet + ":") for _ in range(min(n, 128)))
        assert keys.unpack_user_id(keys.pack_user_id(uid)) == uid
    assert keys.unpack_collection_id(keys.pack_collection_id("-")) == "-"  # no "leading zero"
    assert len(keys.pack_collection_id("z" * 255)) <= 192


def test_tokens_fit_the_model_and_are_bound():
    codec = keys.TokenCodec("secret")
    longest = keys.pack_collection_id("z" * 255)
    token = codec.encode("ListCollections", b"", longest)
    assert len(token) <= 255
    assert codec.decode(token, "ListCollections", b"") == longest
    bound = keys.binding("inc-1", None, None)
    token = codec.encode("ListFaces", bound, b"cursor")
    assert codec.decode(token, "ListFaces", bound) == b"cursor"
    for args in [
        (token, "ListFaces", keys.binding("inc-2", None, None)),
        (token, "ListFaces", keys.binding("inc-1", "user", None)),
        (token, "ListUsers", bound),
        (keys.TokenCodec("other").encode("ListFaces", bound, b"cursor"), "ListFaces", bound),
        (token[:-2], "ListFaces", bound),
        ("~" * 40, "ListFaces", bound),
        ("", "ListFaces", bound),
    ]:
        with pytest.raises(InvalidPaginationTokenException):
            codec.decode(*args)
    # None and "" are different filters.
    assert keys.binding("i", None) != keys.binding("i", "")
