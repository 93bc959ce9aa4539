"""The seven user operations through ``operations.run`` (validation included), with the real engine
on real photos, on the embedded store. Every response is checked against the botocore output
shape; every error path answers the service's error."""

from __future__ import annotations

import contextlib
import uuid

import pytest

from rekface import operations
from rekface.errors import (
    ConflictException,
    IdempotentParameterMismatchException,
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidPaginationTokenException,
    InvalidParameterException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from tests.operations.calls import call, img

ANN = [f"identities/Ann_Veneman/{n}.jpg" for n in (1, 2, 3)]
ANDY = [f"identities/Andy_Roddick/{n}.jpg" for n in (1, 2, 3)]
CROWD = "groups/dlib_bald_guys.jpg"  # 24 faces
NO_FACE = "nofaces/dlib_dog.jpg"


@pytest.fixture
def cid(ctx):
    collection_id = f"users-{uuid.uuid4().hex[:12]}"
    call(ctx, "CreateCollection", CollectionId=collection_id)
    yield collection_id
    with contextlib.suppress(ResourceNotFoundException):
        operations.run(ctx, "DeleteCollection", {"CollectionId": collection_id})


def index(ctx, cid: str, rel: str) -> str:
    out = call(ctx, "IndexFaces", CollectionId=cid, Image=img(rel), MaxFaces=1)
    return out["FaceRecords"][0]["Face"]["FaceId"]


def test_user_lifecycle_and_search(ctx, cid):
    ann = [index(ctx, cid, rel) for rel in ANN[:2]]
    andy = [index(ctx, cid, rel) for rel in ANDY[:2]]
    assert call(ctx, "CreateUser", CollectionId=cid, UserId="ann") == {}
    assert call(ctx, "CreateUser", CollectionId=cid, UserId="andy:r") == {}
    with pytest.raises(ConflictException, match="ann already exists"):
        call(ctx, "CreateUser", CollectionId=cid, UserId="ann")
    users = call(ctx, "ListUsers", CollectionId=cid)["Users"]
    assert users == [
        {"UserId": "andy:r", "UserStatus": "CREATED"},
        {"UserId": "ann", "UserStatus": "CREATED"},
    ]

    # Ann's faces join Ann; Andy's face is refused by Ann's faces (default threshold 75).
    out = call(ctx, "AssociateFaces", CollectionId=cid, UserId="ann", FaceIds=ann[:1])
    assert out == {
        "AssociatedFaces": [{"FaceId": ann[0]}],
        "UnsuccessfulFaceAssociations": [],
        "UserStatus": "ACTIVE",
    }
    missing = str(uuid.uuid4())
    out = call(
        ctx, "AssociateFaces", CollectionId=cid, UserId="ann", FaceIds=[ann[1], andy[0], missing]
    )
    assert out["AssociatedFaces"] == [{"FaceId": ann[1]}]
    low, not_found = out["UnsuccessfulFaceAssociations"]
    assert low["FaceId"] == andy[0] and low["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert low["UserId"] == "ann" and 0 <= low["Confidence"] < 75
    assert not_found == {"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]}
    call(ctx, "AssociateFaces", CollectionId=cid, UserId="andy:r", FaceIds=andy)
    out = call(ctx, "AssociateFaces", CollectionId=cid, UserId="ann", FaceIds=[andy[1]])
    assert out["UnsuccessfulFaceAssociations"] == [
        {"FaceId": andy[1], "UserId": "andy:r", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
    ]
    described = call(ctx, "DescribeCollection", CollectionId=cid)
    assert described["UserCount"] == 2 and described["FaceCount"] == 4
    listed = call(ctx, "ListFaces", CollectionId=cid, UserId="ann")["Faces"]
    assert sorted(f["FaceId"] for f in listed) == sorted(ann)
    assert all(f["UserId"] == "ann" for f in listed)

    # An unseen photo of Ann finds Ann first; SearchFacesByImage now shows the faces' UserId.
    out = call(ctx, "SearchUsersByImage", CollectionId=cid, Image=img(ANN[2]))
    assert [m["User"] for m in out["UserMatches"]] == [{"UserId": "ann", "UserStatus": "ACTIVE"}]
    assert out["UserMatches"][0]["Similarity"] >= 80
    assert set(out["SearchedFace"]["FaceDetail"]) == {"BoundingBox", "Confidence"}
    assert out["UnsearchedFaces"] == [] and out["FaceModelVersion"] == "1.0"
    faces = call(ctx, "SearchFacesByImage", CollectionId=cid, Image=img(ANN[2]))["FaceMatches"]
    assert {m["Face"]["UserId"] for m in faces} == {"ann"}
    everyone = call(
        ctx, "SearchUsersByImage", CollectionId=cid, Image=img(ANN[2]), UserMatchThreshold=0
    )["UserMatches"]
    assert [m["User"]["UserId"] for m in everyone] == ["ann", "andy:r"]
    assert everyone[0]["Similarity"] > everyone[1]["Similarity"]
    one = call(
        ctx,
        "SearchUsersByImage",
        CollectionId=cid,
        Image=img(ANN[2]),
        UserMatchThreshold=0,
        MaxUsers=1,
    )
    assert [m["User"]["UserId"] for m in one["UserMatches"]] == ["ann"]

    # SearchUsers by FaceId: the face's own user; by UserId: the others (here below 80).
    by_face = call(ctx, "SearchUsers", CollectionId=cid, FaceId=andy[0])
    assert by_face["SearchedFace"] == {"FaceId": andy[0]}
    assert [m["User"]["UserId"] for m in by_face["UserMatches"]] == ["andy:r"]
    by_user = call(ctx, "SearchUsers", CollectionId=cid, UserId="ann", UserMatchThreshold=0)
    assert by_user["SearchedUser"] == {"UserId": "ann"}
    assert [m["User"]["UserId"] for m in by_user["UserMatches"]] == ["andy:r"]
    assert call(ctx, "SearchUsers", CollectionId=cid, UserId="ann")["UserMatches"] == []

    # DeleteFaces refuses a user's face; DisassociateFaces frees it; DeleteUser keeps faces.
    # (not through ``call``: DeleteFaces answers DeletedFaces [], which the model's FaceIdList
    # minimum of 1 does not allow; that is DeleteFaces' own concern)
    refused = operations.run(ctx, "DeleteFaces", {"CollectionId": cid, "FaceIds": [ann[0]]})
    assert refused["UnsuccessfulFaceDeletions"] == [
        {"FaceId": ann[0], "UserId": "ann", "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]}
    ]
    out = call(ctx, "DisassociateFaces", CollectionId=cid, UserId="ann", FaceIds=[ann[0], andy[0]])
    assert out == {
        "DisassociatedFaces": [{"FaceId": ann[0]}],
        "UnsuccessfulFaceDisassociations": [
            {"FaceId": andy[0], "UserId": "andy:r", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
        ],
        "UserStatus": "ACTIVE",
    }
    assert call(ctx, "DeleteUser", CollectionId=cid, UserId="andy:r") == {}
    assert call(ctx, "DescribeCollection", CollectionId=cid)["UserCount"] == 1
    assert call(ctx, "ListFaces", CollectionId=cid, UserId="andy:r")["Faces"] == []
    assert len(call(ctx, "ListFaces", CollectionId=cid)["Faces"]) == 4  # faces stay
    out = call(ctx, "SearchUsersByImage", CollectionId=cid, Image=img(ANDY[2]))
    assert out["UserMatches"] == []  # Andy is no user any more
    deleted = call(ctx, "DeleteFaces", CollectionId=cid, FaceIds=[ann[0], andy[0]])
    assert sorted(deleted["DeletedFaces"]) == sorted([ann[0], andy[0]])


def test_search_users_by_image_unsearched_faces(ctx, cid):
    crowd = call(ctx, "SearchUsersByImage", CollectionId=cid, Image=img(CROWD))
    assert crowd["UserMatches"] == []  # no user yet: not an error
    detected = len(call(ctx, "DetectFaces", Image=img(CROWD))["FaceDetails"])
    unsearched = crowd["UnsearchedFaces"]
    assert len(unsearched) == detected - 1
    assert all(u["Reasons"] == ["FACE_NOT_LARGEST"] for u in unsearched)
    assert {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"} <= set(
        unsearched[0]["FaceDetails"]
    )
    searched = crowd["SearchedFace"]["FaceDetail"]["BoundingBox"]
    area = searched["Width"] * searched["Height"]
    assert all(
        u["FaceDetails"]["BoundingBox"]["Width"] * u["FaceDetails"]["BoundingBox"]["Height"]
        <= area + 1e-9
        for u in unsearched
    )
    # With a quality bar, faces under it carry their quality reasons; those under it that are
    # smaller than the searched face carry FACE_NOT_LARGEST too.
    high = call(ctx, "SearchUsersByImage", CollectionId=cid, Image=img(CROWD), QualityFilter="HIGH")
    quality = {"EXTREME_POSE", "LOW_BRIGHTNESS", "LOW_SHARPNESS", "LOW_CONFIDENCE"}
    quality |= {"SMALL_BOUNDING_BOX"}
    assert len(high["UnsearchedFaces"]) == detected - 1
    assert any(set(u["Reasons"]) & quality for u in high["UnsearchedFaces"])
    for u in high["UnsearchedFaces"]:
        assert u["Reasons"] and set(u["Reasons"]) <= quality | {"FACE_NOT_LARGEST"}
    # No face at all: empty UserMatches, no SearchedFace.
    none = call(ctx, "SearchUsersByImage", CollectionId=cid, Image=img(NO_FACE))
    assert none == {"UserMatches": [], "FaceModelVersion": "1.0", "UnsearchedFaces": []}
    with pytest.raises(InvalidImageFormatException):
        call(ctx, "SearchUsersByImage", CollectionId=cid, Image={"Bytes": b"not an image"})
    with pytest.raises(ImageTooLargeException):
        call(ctx, "SearchUsersByImage", CollectionId=cid, Image={"Bytes": b"\xff" * (5 << 20 | 1)})


def test_client_request_tokens(ctx, cid):
    faces = [index(ctx, cid, rel) for rel in ANN[:2]]
    req = {"CollectionId": cid, "UserId": "ann", "ClientRequestToken": "create-ann-1"}
    assert call(ctx, "CreateUser", **req) == {}
    assert call(ctx, "CreateUser", **req) == {}  # a retry: the same answer, not Conflict
    with pytest.raises(IdempotentParameterMismatchException, match="create-ann-1"):
        call(ctx, "CreateUser", **(req | {"UserId": "someone-else"}))
    assert call(ctx, "DescribeCollection", CollectionId=cid)["UserCount"] == 1

    assoc = {"CollectionId": cid, "UserId": "ann", "FaceIds": faces, "ClientRequestToken": "a-1"}
    first = call(ctx, "AssociateFaces", **assoc)
    assert len(first["AssociatedFaces"]) == 2
    assert call(ctx, "AssociateFaces", **assoc) == first  # not "already associated: ignored"
    with pytest.raises(IdempotentParameterMismatchException):
        call(ctx, "AssociateFaces", **(assoc | {"UserMatchThreshold": 90.0}))
    dis = {"CollectionId": cid, "UserId": "ann", "FaceIds": faces[:1], "ClientRequestToken": "d-1"}
    first = call(ctx, "DisassociateFaces", **dis)
    assert call(ctx, "DisassociateFaces", **dis) == first
    delete = {"CollectionId": cid, "UserId": "ann", "ClientRequestToken": "del-1"}
    assert call(ctx, "DeleteUser", **delete) == {}
    assert call(ctx, "DeleteUser", **delete) == {}  # not ResourceNotFoundException
    with pytest.raises(ResourceNotFoundException, match="user ann does not exist"):
        call(ctx, "DeleteUser", CollectionId=cid, UserId="ann")


def test_list_users_pages(ctx, cid):
    ids = [f"user-{i:02d}" for i in range(7)]
    for uid in reversed(ids):
        call(ctx, "CreateUser", CollectionId=cid, UserId=uid)
    seen, token = [], None
    while True:
        more = {"NextToken": token} if token else {}
        page = call(ctx, "ListUsers", CollectionId=cid, MaxResults=3, **more)
        seen += [u["UserId"] for u in page["Users"]]
        token = page.get("NextToken")
        if token is None:
            break
    assert seen == ids
    with pytest.raises(InvalidPaginationTokenException):
        call(ctx, "ListUsers", CollectionId=cid, NextToken="forged")
    users_token = call(ctx, "ListUsers", CollectionId=cid, MaxResults=1)["NextToken"]
    with pytest.raises(InvalidPaginationTokenException):  # a ListUsers token is not ListFaces'
        call(ctx, "ListFaces", CollectionId=cid, NextToken=users_token)


def test_user_errors(ctx, cid):
    face = index(ctx, cid, ANN[0])
    missing_collection = f"none-{uuid.uuid4().hex[:8]}"
    for op, request in [
        ("CreateUser", {"UserId": "u"}),
        ("DeleteUser", {"UserId": "u"}),
        ("ListUsers", {}),
        ("AssociateFaces", {"UserId": "u", "FaceIds": [face]}),
        ("DisassociateFaces", {"UserId": "u", "FaceIds": [face]}),
        ("SearchUsers", {"UserId": "u"}),
        ("SearchUsersByImage", {"Image": img(ANN[1])}),
    ]:
        with pytest.raises(ResourceNotFoundException, match="collection id"):
            call(ctx, op, CollectionId=missing_collection, **request)
    for op, request in [
        ("DeleteUser", {"UserId": "ghost"}),
        ("AssociateFaces", {"UserId": "ghost", "FaceIds": [face]}),
        ("DisassociateFaces", {"UserId": "ghost", "FaceIds": [face]}),
        ("SearchUsers", {"UserId": "ghost"}),
    ]:
        with pytest.raises(ResourceNotFoundException, match="user ghost does not exist"):
            call(ctx, op, CollectionId=cid, **request)
    with pytest.raises(InvalidParameterException, match="exactly one of FaceId and UserId"):
        call(ctx, "SearchUsers", CollectionId=cid)
    with pytest.raises(InvalidParameterException, match="exactly one of FaceId and UserId"):
        call(ctx, "SearchUsers", CollectionId=cid, UserId="u", FaceId=face)
    with pytest.raises(InvalidParameterException, match="faceId was not found"):
        call(ctx, "SearchUsers", CollectionId=cid, FaceId=str(uuid.uuid4()))
    # A user without faces is searchable and matches nobody.
    call(ctx, "CreateUser", CollectionId=cid, UserId="empty")
    out = call(ctx, "SearchUsers", CollectionId=cid, UserId="empty", UserMatchThreshold=0)
    assert out["UserMatches"] == [] and out["SearchedUser"] == {"UserId": "empty"}


def test_a_full_user_refuses_more_faces(ctx, cid, monkeypatch):
    """The 100-face limit through the API (lowered on the store to keep the test short)."""
    faces = [index(ctx, cid, rel) for rel in ANN]
    monkeypatch.setattr(ctx.store, "max_faces_per_user", 2)
    call(ctx, "CreateUser", CollectionId=cid, UserId="ann")
    call(ctx, "AssociateFaces", CollectionId=cid, UserId="ann", FaceIds=faces[:2])
    with pytest.raises(ServiceQuotaExceededException, match="limit of 2 faces per user"):
        call(ctx, "AssociateFaces", CollectionId=cid, UserId="ann", FaceIds=faces[2:])


def test_requests_the_model_refuses(ctx, cid):
    face = str(uuid.uuid4())
    base = {"CollectionId": cid}
    bad = [
        ("CreateUser", {**base, "UserId": "has space"}),
        ("CreateUser", {**base, "UserId": "u" * 129}),
        ("CreateUser", {**base, "UserId": ""}),
        ("CreateUser", {**base, "UserId": "u", "ClientRequestToken": "no spaces"}),
        ("CreateUser", {**base, "UserId": "u", "ClientRequestToken": "t" * 65}),
        ("CreateUser", {"UserId": "u"}),
        ("DeleteUser", {**base, "UserId": "a/b"}),
        ("ListUsers", {**base, "MaxResults": 501}),
        ("ListUsers", {**base, "MaxResults": 0}),
        ("ListUsers", {**base, "NextToken": "t" * 256}),
        ("AssociateFaces", {**base, "UserId": "u", "FaceIds": []}),
        ("AssociateFaces", {**base, "UserId": "u", "FaceIds": [face] * 101}),
        ("AssociateFaces", {**base, "UserId": "u", "FaceIds": ["not-a-uuid"]}),
        ("AssociateFaces", {**base, "UserId": "u", "FaceIds": [face], "UserMatchThreshold": 101}),
        ("AssociateFaces", {**base, "UserId": "u", "FaceIds": [face], "UserMatchThreshold": -1}),
        ("DisassociateFaces", {**base, "UserId": "u"}),
        ("DisassociateFaces", {**base, "UserId": "u", "FaceIds": [face.upper()]}),
        ("SearchUsers", {**base, "UserId": "u", "MaxUsers": 501}),
        ("SearchUsers", {**base, "UserId": "u", "MaxUsers": 0}),
        ("SearchUsers", {**base, "FaceId": "nope"}),
        ("SearchUsersByImage", {**base, "Image": img(ANN[0]), "QualityFilter": "BEST"}),
        ("SearchUsersByImage", {**base, "Image": img(ANN[0]), "UserMatchThreshold": 100.5}),
        ("SearchUsersByImage", {**base}),
    ]
    for op, request in bad:
        with pytest.raises(InvalidParameterException, match="validation error"):
            operations.run(ctx, op, request)
