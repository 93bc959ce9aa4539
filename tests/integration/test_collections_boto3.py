"""Collections through a real boto3 client against a live `rekface serve`: the full flow on photos
of several people from ../shared/faces, with assertions on who is found; and a restarted server
that still has everything (the embedded store is a file under --data-dir)."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError
from live_server import assert_client_errors, error_code, start, stop

from benchmarks.shared_faces import image_bytes
from rekface.adapters.bootstrap import build_context
from rekface.settings import Settings

# People whose photo 3 is a clear match of their photos 1 and 2 (the flow is about the API; the
# identification rate over all 450 people is measured by benchmarks/search_accuracy.py).
PEOPLE = [
    "Ann_Veneman",
    "Andy_Roddick",
    "Angelina_Jolie",
    "Ali_Naimi",
    "Al_Sharpton",
    "Albert_Costa",
]


def photo_path(person: str, n: int) -> str:
    return f"identities/{person}/{n}.jpg"


def test_full_collection_flow(rekognition):
    cid = f"flow-{uuid.uuid4().hex[:10]}"
    created = rekognition.create_collection(CollectionId=cid, Tags={"suite": "boto3"})
    assert created["StatusCode"] == 200 and created["CollectionArn"].endswith(f"/{cid}")
    with pytest.raises(ClientError) as exc:
        rekognition.create_collection(CollectionId=cid)
    assert error_code(exc) == "ResourceAlreadyExistsException"

    # Gallery: photos 1 and 2 of each person.
    face_owner = {}
    for person in PEOPLE:
        for n in (1, 2):
            out = rekognition.index_faces(
                CollectionId=cid,
                Image={"Bytes": image_bytes(photo_path(person, n))},
                ExternalImageId=f"{person}:{n}",
                MaxFaces=1,
            )
            (record,) = out["FaceRecords"]
            face_owner[record["Face"]["FaceId"]] = person
    described = rekognition.describe_collection(CollectionId=cid)
    assert described["FaceCount"] == 2 * len(PEOPLE) and described["UserCount"] == 0

    # Probe: photo 3 of each person finds both photos of that person, and nobody else, at the
    # default threshold (80).
    for person in PEOPLE:
        found = rekognition.search_faces_by_image(
            CollectionId=cid, Image={"Bytes": image_bytes(photo_path(person, 3))}
        )
        matches = found["FaceMatches"]
        assert [face_owner[m["Face"]["FaceId"]] for m in matches] == [person, person]
        assert {m["Face"]["ExternalImageId"] for m in matches} == {f"{person}:1", f"{person}:2"}
        assert all(m["Similarity"] >= 80 for m in matches)
    # SearchFaces from a stored face: the person's other photo ranks first.
    someone = next(f for f, p in face_owner.items() if p == PEOPLE[0])
    by_id = rekognition.search_faces(CollectionId=cid, FaceId=someone, FaceMatchThreshold=0)
    assert face_owner[by_id["FaceMatches"][0]["Face"]["FaceId"]] == PEOPLE[0]
    assert someone not in [m["Face"]["FaceId"] for m in by_id["FaceMatches"]]

    # List with boto3's own paginator (our NextToken goes round trip through JSON).
    pages = rekognition.get_paginator("list_faces").paginate(
        CollectionId=cid, PaginationConfig={"PageSize": 3}
    )
    listed = [f["FaceId"] for page in pages for f in page["Faces"]]
    assert listed == sorted(face_owner)
    collections = rekognition.get_paginator("list_collections").paginate(
        PaginationConfig={"PageSize": 1}
    )
    assert cid in [c for page in collections for c in page["CollectionIds"]]

    # Delete one person's faces: that person is not found any more, the others still are.
    gone = [f for f, p in face_owner.items() if p == PEOPLE[1]]
    deleted = rekognition.delete_faces(CollectionId=cid, FaceIds=gone)
    assert sorted(deleted["DeletedFaces"]) == sorted(gone)
    assert deleted["UnsuccessfulFaceDeletions"] == []
    found = rekognition.search_faces_by_image(
        CollectionId=cid, Image={"Bytes": image_bytes(photo_path(PEOPLE[1], 3))}
    )
    assert all(face_owner[m["Face"]["FaceId"]] != PEOPLE[1] for m in found["FaceMatches"])
    assert rekognition.describe_collection(CollectionId=cid)["FaceCount"] == 2 * len(PEOPLE) - 2

    arn = created["CollectionArn"]
    rekognition.tag_resource(ResourceArn=arn, Tags={"owner": "qa"})
    rekognition.untag_resource(ResourceArn=arn, TagKeys=["suite"])
    assert rekognition.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"owner": "qa"}

    assert rekognition.delete_collection(CollectionId=cid)["StatusCode"] == 200
    for call in (
        lambda: rekognition.describe_collection(CollectionId=cid),
        lambda: rekognition.list_faces(CollectionId=cid),
        lambda: rekognition.list_tags_for_resource(ResourceArn=arn),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == "ResourceNotFoundException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_client_mistakes_are_400s(rekognition):
    cid = f"err-{uuid.uuid4().hex[:10]}"
    rekognition.create_collection(CollectionId=cid)
    try:
        cases = [
            (lambda: rekognition.list_faces(CollectionId=cid, NextToken="forged"),
             "InvalidPaginationTokenException"),
            (lambda: rekognition.search_faces_by_image(
                CollectionId=cid, Image={"Bytes": image_bytes("nofaces/dlib_dog.jpg")}),
             "InvalidParameterException"),
            (lambda: rekognition.search_faces(CollectionId=cid, FaceId=str(uuid.uuid4())),
             "InvalidParameterException"),
            (lambda: rekognition.list_collections(MaxResults=5000),
             "InvalidParameterException"),
            (lambda: rekognition.index_faces(CollectionId=cid, Image={"Bytes": b"not an image"}),
             "InvalidImageFormatException"),
        ]  # fmt: skip
        assert_client_errors(cases)
    finally:
        rekognition.delete_collection(CollectionId=cid)


def test_restarted_server_keeps_collections(engine, tmp_path):
    """Two servers one after the other on the same --data-dir: the second sees everything."""

    def serve():
        return start(build_context(Settings(data_dir=tmp_path), engine=engine))

    server, client = serve()
    client.create_collection(CollectionId="kept", Tags={"k": "v"})
    indexed = client.index_faces(
        CollectionId="kept", Image={"Bytes": image_bytes(photo_path(PEOPLE[0], 1))}
    )
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    stop(server)

    server, client = serve()
    try:
        assert client.describe_collection(CollectionId="kept")["FaceCount"] == 1
        assert [f["FaceId"] for f in client.list_faces(CollectionId="kept")["Faces"]] == [face_id]
        found = client.search_faces_by_image(
            CollectionId="kept", Image={"Bytes": image_bytes(photo_path(PEOPLE[0], 2))}
        )
        assert found["FaceMatches"][0]["Face"]["FaceId"] == face_id
        arn = client.describe_collection(CollectionId="kept")["CollectionARN"]
        assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"k": "v"}
    finally:
        stop(server)
