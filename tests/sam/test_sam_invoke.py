"""`sam local invoke` of every function of the synthesized template with its events/ file, in the
order a user would run them (the collection first, its deletion last), S3 and DynamoDB on moto's
server. Each answer is checked, not the exit code: a SAM run that times out still exits 0."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import EVENTS, TEMPLATE, Invocation, invoke
from local_aws import BUCKET, LocalAws

MADE_UP_FACE = "11111111-2222-3333-4444-555555555555"  # the FaceId the sample events name


def body(inv: Invocation, status: int = 200) -> dict[str, Any]:
    """The API Gateway proxy answer's status and JSON body."""
    answer = inv.answer
    assert answer.get("statusCode") == status, (inv.event, answer, inv.stderr[-2000:])
    assert answer["headers"]["Content-Type"] == "application/x-amz-json-1.1"
    return json.loads(answer["body"])


def ok_empty(inv: Invocation) -> None:
    assert body(inv) == {}


def check_create_collection(inv: Invocation) -> None:
    out = body(inv)
    assert out["StatusCode"] == 200
    assert out["CollectionArn"].endswith(":collection/family")


def check_tags(inv: Invocation) -> None:
    assert body(inv) == {"Tags": {"team": "photos"}}


def check_index(inv: Invocation) -> None:
    out = body(inv)
    assert len(out["FaceRecords"]) == 1
    assert out["FaceRecords"][0]["Face"]["ExternalImageId"] == "alice"


def check_describe(inv: Invocation) -> None:
    # index_faces.json and the S3 flow's index/family/alice.jpg: one face each.
    assert body(inv)["FaceCount"] == 2


def check_list_collections(inv: Invocation) -> None:
    assert "family" in body(inv)["CollectionIds"]


def check_list_faces(inv: Invocation) -> None:
    faces = body(inv)["Faces"]
    assert [f["ExternalImageId"] for f in faces] == ["alice", "alice"]


def check_detect(inv: Invocation) -> None:
    faces = body(inv)["FaceDetails"]
    assert len(faces) == 1 and faces[0]["Confidence"] > 90


def check_compare(inv: Invocation) -> None:
    out = body(inv)
    # photos/face-1.jpg and face-2.jpg are the same person (local_aws.PHOTOS); face-2 also shows
    # part of a second face at its left edge (UnmatchedFaces).
    assert len(out["FaceMatches"]) == 1 and out["FaceMatches"][0]["Similarity"] > 80


def check_search_by_image(inv: Invocation) -> None:
    matches = body(inv)["FaceMatches"]
    assert [m["Face"]["ExternalImageId"] for m in matches] == ["alice", "alice"]


def check_associate_unknown(inv: Invocation) -> None:
    out = body(inv)
    assert out["AssociatedFaces"] == []
    assert out["UnsuccessfulFaceAssociations"][0]["FaceId"] == MADE_UP_FACE


def check_disassociate_unknown(inv: Invocation) -> None:
    out = body(inv)
    assert out["DisassociatedFaces"] == []
    assert out["UnsuccessfulFaceDisassociations"][0]["FaceId"] == MADE_UP_FACE


def check_delete_faces_unknown(inv: Invocation) -> None:
    out = body(inv)
    assert out["DeletedFaces"] == []


def check_list_users(inv: Invocation) -> None:
    assert [u["UserId"] for u in body(inv)["Users"]] == ["paul"]


def check_search_users(inv: Invocation) -> None:
    out = body(inv)
    assert out["UserMatches"] == []  # paul has no face associated (the event's FaceId is made up)


def check_search_faces_unknown(inv: Invocation) -> None:
    out = body(inv, 400)
    assert out["__type"] == "InvalidParameterException", out


def check_delete_collection(inv: Invocation) -> None:
    assert body(inv) == {"StatusCode": 200}


def s3_result(name: str, operation: str) -> Callable[[Invocation, LocalAws], None]:
    """An S3-flow invocation: the answer written to results/<name>.json with its metadata
    (<name>: the source key after its flow prefix, extension kept; compare/<job> for a job)."""
    key = f"results/{name}.json"

    def check(inv: Invocation, aws: LocalAws) -> None:
        inv.answer  # noqa: B018 (an answer at all: the run did not time out or crash)
        obj = aws.client("s3").get_object(Bucket=BUCKET, Key=key)
        assert obj["Metadata"]["operation"] == operation
        result = json.loads(obj["Body"].read())
        assert obj["Metadata"]["status"] == "200", result
        if operation == "IndexFaces":
            assert len(result["FaceRecords"]) == 1
        elif operation == "CompareFaces":
            assert result["FaceMatches"][0]["Similarity"] > 80
        else:
            assert result["FaceMatches"], result

    return check


# (event file, function logical id, check), in phases: a phase runs once the previous one is done
# (the collection before its faces, its deletion last); the cases of a phase run in parallel,
# which also lets SAM build its image once for several of them (it rebuilds the image of a
# function with layers of the template at every invocation, ~10-40 s here).
PHASES: list[list[tuple[str, str, Callable[..., None]]]] = [
    [
        ("create_collection.json", "CreateCollectionFunction", check_create_collection),
        ("detect_faces.json", "DetectFacesFunction", check_detect),
        ("compare_faces.json", "CompareFacesFunction", check_compare),
        ("wire_protocol_detect_faces.json", "WireProtocolFunction", check_detect),
        ("wire_protocol_compare_faces.json", "WireProtocolFunction", check_compare),
        ("s3_compare_source.json", "S3EventsFunction", s3_result("compare/job-1", "CompareFaces")),
    ],
    [
        ("index_faces.json", "IndexFacesFunction", check_index),
        ("tag_resource.json", "TagResourceFunction", ok_empty),
        ("create_user.json", "CreateUserFunction", ok_empty),
        ("s3_compare_target.json", "S3EventsFunction", s3_result("compare/job-1", "CompareFaces")),
    ],
    [
        ("s3_index.json", "S3EventsFunction", s3_result("index/family/alice.jpg", "IndexFaces")),
        ("list_tags_for_resource.json", "ListTagsForResourceFunction", check_tags),
        ("associate_faces.json", "AssociateFacesFunction", check_associate_unknown),
        ("list_users.json", "ListUsersFunction", check_list_users),
        ("search_faces.json", "SearchFacesFunction", check_search_faces_unknown),
    ],
    [
        ("describe_collection.json", "DescribeCollectionFunction", check_describe),
        ("list_collections.json", "ListCollectionsFunction", check_list_collections),
        ("list_faces.json", "ListFacesFunction", check_list_faces),
        ("search_faces_by_image.json", "SearchFacesByImageFunction", check_search_by_image),
        ("search_users.json", "SearchUsersFunction", check_search_users),
        ("search_users_by_image.json", "SearchUsersByImageFunction", check_search_users),
        ("s3_search.json", "S3EventsFunction",
         s3_result("search/family/visitor.jpg", "SearchFacesByImage")),
    ],
    [
        ("untag_resource.json", "UntagResourceFunction", ok_empty),
        ("disassociate_faces.json", "DisassociateFacesFunction", check_disassociate_unknown),
        ("delete_faces.json", "DeleteFacesFunction", check_delete_faces_unknown),
    ],
    [("delete_user.json", "DeleteUserFunction", ok_empty)],
    [("delete_collection.json", "DeleteCollectionFunction", check_delete_collection)],
]  # fmt: skip
CASES = [case for phase in PHASES for case in phase]
PARALLEL = 4  # SAM processes at once (2 cores: most of their time is waiting on Docker)


@pytest.fixture(scope="module")
def invocations(local_aws: LocalAws, start_lambda: str) -> dict[str, Invocation]:
    """Every case once, phase by phase (start-lambda serves the router's calls)."""
    done: dict[str, Invocation] = {}
    with ThreadPoolExecutor(PARALLEL) as pool:
        for phase in PHASES:
            futures = {pool.submit(invoke, fn, EVENTS / event): event for event, fn, _ in phase}
            for future, event in futures.items():
                done[event] = future.result()
    return done


def test_every_event_file_is_invoked() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(e for e, _, _ in CASES)


@pytest.mark.needs_sam  # the local variant's template: make synth-local
def test_every_function_is_invoked() -> None:
    template = json.loads(TEMPLATE.read_text())
    functions = {
        name
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Lambda::Function" and "aws:asset:path" in res.get("Metadata", {})
    }
    assert functions == {f for _, f, _ in CASES}


@pytest.mark.needs_sam
@pytest.mark.parametrize(("event", "function", "check"), CASES, ids=[c[0] for c in CASES])
def test_invoke(invocations, local_aws, event, function, check) -> None:
    inv = invocations[event]
    assert inv.returncode == 0, inv.stderr[-3000:]
    if check.__code__.co_argcount == 2:
        check(inv, local_aws)
    else:
        check(inv)
