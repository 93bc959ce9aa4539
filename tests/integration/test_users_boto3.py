"""Users through a real boto3 client against a live `rekface serve`: a user per person from photos
of ../shared/faces, an unseen photo of each person finds that person first; ClientRequestTokens
that survive a restart of the server; the service's errors as boto3 sees them."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError
from live_server import assert_client_errors, error_code, start, stop

from benchmarks.shared_faces import image_bytes
from rekface.adapters.bootstrap import build_context
from rekface.settings import Settings

# Photos 1-3 build each user; photo 4 is the unseen probe. (Rank-1 over all the identities is
# measured by benchmarks/users_search.py.)
PEOPLE = ["Barack_Obama", "John_Simm", "Azra_Akin", "David_Beckham", "Carlos_Menem"]


def photo(person: str, n: int) -> dict:
    return {"Bytes": image_bytes(f"identities/{person}/{n}.jpg")}


def test_users_flow(rekognition):
    cid = f"users-{uuid.uuid4().hex[:10]}"
    rekognition.create_collection(CollectionId=cid)
    try:
        faces: dict[str, list[str]] = {}
        for person in PEOPLE:
            faces[person] = [
                rekognition.index_faces(CollectionId=cid, Image=photo(person, n), MaxFaces=1)[
                    "FaceRecords"
                ][0]["Face"]["FaceId"]
                for n in (1, 2, 3)
            ]
            rekognition.create_user(
                CollectionId=cid, UserId=person, ClientRequestToken=f"create-{person}"
            )
            out = rekognition.associate_faces(
                CollectionId=cid,
                UserId=person,
                FaceIds=faces[person],
                ClientRequestToken=f"assoc-{person}",
            )
            assert sorted(f["FaceId"] for f in out["AssociatedFaces"]) == sorted(faces[person])
            assert out["UnsuccessfulFaceAssociations"] == [] and out["UserStatus"] == "ACTIVE"
        # A retried AssociateFaces (same token) answers as the first call did.
        again = rekognition.associate_faces(
            CollectionId=cid,
            UserId=PEOPLE[0],
            FaceIds=faces[PEOPLE[0]],
            ClientRequestToken=f"assoc-{PEOPLE[0]}",
        )
        assert len(again["AssociatedFaces"]) == 3
        assert rekognition.describe_collection(CollectionId=cid)["UserCount"] == len(PEOPLE)
        pages = rekognition.get_paginator("list_users").paginate(
            CollectionId=cid, PaginationConfig={"PageSize": 2}
        )
        users = [u for page in pages for u in page["Users"]]
        assert users == [{"UserId": p, "UserStatus": "ACTIVE"} for p in sorted(PEOPLE)]

        # An unseen photo of each person finds that person first, at the default threshold.
        for person in PEOPLE:
            found = rekognition.search_users_by_image(CollectionId=cid, Image=photo(person, 4))
            matches = found["UserMatches"]
            assert matches and matches[0]["User"] == {"UserId": person, "UserStatus": "ACTIVE"}
            assert matches[0]["Similarity"] >= 80
            assert [m["Similarity"] for m in matches] == sorted(
                (m["Similarity"] for m in matches), reverse=True
            )
            assert found["SearchedFace"]["FaceDetail"]["Confidence"] > 90
        by_face = rekognition.search_users(CollectionId=cid, FaceId=faces[PEOPLE[1]][0])
        assert by_face["UserMatches"][0]["User"]["UserId"] == PEOPLE[1]
        by_user = rekognition.search_users(
            CollectionId=cid, UserId=PEOPLE[2], UserMatchThreshold=0, MaxUsers=2
        )
        assert by_user["SearchedUser"] == {"UserId": PEOPLE[2]}
        assert len(by_user["UserMatches"]) == 2
        assert PEOPLE[2] not in [m["User"]["UserId"] for m in by_user["UserMatches"]]
        # A face of another user stays there.
        refused = rekognition.associate_faces(
            CollectionId=cid, UserId=PEOPLE[0], FaceIds=[faces[PEOPLE[3]][0]]
        )
        (item,) = refused["UnsuccessfulFaceAssociations"]
        assert item["Reasons"] == ["ASSOCIATED_TO_A_DIFFERENT_USER"]
        assert item["UserId"] == PEOPLE[3]

        # DeleteUser: the person is no longer found; their faces stay in the collection.
        rekognition.delete_user(CollectionId=cid, UserId=PEOPLE[3])
        found = rekognition.search_users_by_image(CollectionId=cid, Image=photo(PEOPLE[3], 4))
        assert PEOPLE[3] not in [m["User"]["UserId"] for m in found["UserMatches"]]
        kept = rekognition.list_faces(CollectionId=cid, FaceIds=faces[PEOPLE[3]])["Faces"]
        assert len(kept) == 3 and all("UserId" not in f for f in kept)
        out = rekognition.disassociate_faces(
            CollectionId=cid, UserId=PEOPLE[4], FaceIds=faces[PEOPLE[4]][:1]
        )
        assert out["DisassociatedFaces"] == [{"FaceId": faces[PEOPLE[4]][0]}]

        # No face in the image: not an error.
        none = rekognition.search_users_by_image(
            CollectionId=cid, Image={"Bytes": image_bytes("nofaces/dlib_dog.jpg")}
        )
        assert none["UserMatches"] == [] and "SearchedFace" not in none

        cases = [
            (lambda: rekognition.create_user(CollectionId=cid, UserId=PEOPLE[0]),
             "ConflictException"),
            (lambda: rekognition.create_user(
                CollectionId=cid, UserId="someone", ClientRequestToken=f"create-{PEOPLE[0]}"),
             "IdempotentParameterMismatchException"),
            (lambda: rekognition.delete_user(CollectionId=cid, UserId="nobody"),
             "ResourceNotFoundException"),
            (lambda: rekognition.associate_faces(
                CollectionId=cid, UserId="nobody", FaceIds=faces[PEOPLE[0]]),
             "ResourceNotFoundException"),
            (lambda: rekognition.create_user(CollectionId=cid, UserId="not valid"),
             "InvalidParameterException"),
            (lambda: rekognition.search_users(CollectionId=cid), "InvalidParameterException"),
            (lambda: rekognition.list_users(CollectionId=cid, NextToken="forged"),
             "InvalidPaginationTokenException"),
            (lambda: rekognition.list_users(CollectionId="no-such-collection"),
             "ResourceNotFoundException"),
        ]  # fmt: skip
        assert_client_errors(cases)
    finally:
        rekognition.delete_collection(CollectionId=cid)


def test_tokens_and_users_survive_a_restart(engine, tmp_path):
    """Two servers one after the other on the same --data-dir: the second answers a retried
    request from the first server's token record, and finds the users."""

    def serve():
        return start(build_context(Settings(data_dir=tmp_path), engine=engine))

    person = PEOPLE[0]
    server, client = serve()
    try:
        client.create_collection(CollectionId="kept")
        face = client.index_faces(CollectionId="kept", Image=photo(person, 1))["FaceRecords"][0]
        client.create_user(CollectionId="kept", UserId=person, ClientRequestToken="create-1")
        request = {
            "CollectionId": "kept",
            "UserId": person,
            "FaceIds": [face["Face"]["FaceId"]],
            "ClientRequestToken": "assoc-1",
        }
        first = client.associate_faces(**request)
    finally:
        stop(server)

    server, client = serve()
    try:
        # The retry of a request the first server answered: the same answer, nothing redone.
        client.create_user(CollectionId="kept", UserId=person, ClientRequestToken="create-1")
        again = client.associate_faces(**request)
        assert again["AssociatedFaces"] == first["AssociatedFaces"] != []
        with pytest.raises(ClientError) as exc:
            client.create_user(CollectionId="kept", UserId="other", ClientRequestToken="create-1")
        assert error_code(exc) == "IdempotentParameterMismatchException"
        found = client.search_users_by_image(CollectionId="kept", Image=photo(person, 2))
        assert found["UserMatches"][0]["User"]["UserId"] == person
    finally:
        stop(server)
