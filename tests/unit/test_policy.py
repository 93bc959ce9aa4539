"""The IAM subset of `rekface serve --credentials`: matching, Deny over Allow, refusals at load."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from rekface.adapters.admission import Gate
from rekface.adapters.credentials import Authority, CredentialsError, load_users
from rekface.adapters.policy import PolicyError, parse_policy, required_access
from rekface.adapters.sigv4 import Caller
from rekface.errors import AccessDeniedException, InvalidS3ObjectException, ThrottlingException

ARN = "arn:aws:rekognition:us-east-1:000000000000:collection/"


def policy(*statements: dict):
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)}, "test.json")


def test_wildcards_case_of_actions_and_resources():
    p = policy(
        {"Effect": "Allow", "Action": "rekognition:Search*", "Resource": ARN + "staff-*"},
        {"Effect": "Allow", "Action": ["REKOGNITION:listcollections"], "Resource": "*"},
    )
    assert p.allows("rekognition:SearchFacesByImage", ARN + "staff-paris")
    assert not p.allows("rekognition:SearchFacesByImage", ARN + "guests")
    assert not p.allows("rekognition:IndexFaces", ARN + "staff-paris")
    assert not p.allows("rekognition:SearchFaces", ARN + "STAFF-paris")  # resources: exact case
    assert p.allows("rekognition:ListCollections", "*")
    # An action without resource-level permissions acts on "*": only Resource "*" grants it.
    assert not policy({"Effect": "Allow", "Action": "rekognition:*", "Resource": ARN + "*"}).allows(
        "rekognition:DetectFaces", "*"
    )


def test_an_explicit_deny_wins_and_nothing_is_allowed_by_default():
    p = policy(
        {"Effect": "Allow", "Action": "rekognition:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "rekognition:Delete*", "Resource": ARN + "prod"},
    )
    assert p.allows("rekognition:DeleteFaces", ARN + "test")
    assert not p.allows("rekognition:DeleteFaces", ARN + "prod")
    assert not policy().allows("rekognition:ListCollections", "*")


@pytest.mark.parametrize(
    "statement,problem",
    [
        ({"Effect": "Allow", "NotAction": "x", "Resource": "*"}, "NotAction"),
        ({"Effect": "Allow", "Action": "x", "Resource": "*", "Condition": {}}, "Condition"),
        ({"Effect": "Maybe", "Action": "x", "Resource": "*"}, "Effect"),
        ({"Effect": "Allow", "Action": "x"}, "Resource is required"),
        ({"Effect": "Allow", "Action": [], "Resource": "*"}, "Action"),
    ],
)
def test_what_rekface_cannot_enforce_exactly_is_refused_at_load(statement, problem):
    with pytest.raises(PolicyError, match=problem):
        policy(statement)


def test_the_access_a_request_needs():
    needs = list(
        required_access(
            "CompareFaces",
            {
                "SourceImage": {"S3Object": {"Bucket": "b", "Name": "k/1.jpg"}},
                "TargetImage": {"Bytes": b"..."},
            },
            "us-east-1",
            "000000000000",
        )
    )
    assert [(n.action, n.resource) for n in needs] == [
        ("rekognition:CompareFaces", "*"),
        ("s3:GetObject", "arn:aws:s3:::b/k/1.jpg"),
    ]
    (need,) = required_access("IndexFaces", {"CollectionId": "c"}, "eu-west-1", "123")
    assert need.resource == "arn:aws:rekognition:eu-west-1:123:collection/c"
    (need,) = required_access("TagResource", {"ResourceArn": ARN + "c"}, "us-east-1", "0")
    assert need.resource == ARN + "c"


def write_credentials(tmp_path: Path, policy_doc: dict | None) -> Path:
    text = "[alice]\naws_access_key_id = AKIDALICE\naws_secret_access_key = s1\n"
    if policy_doc is not None:
        (tmp_path / "alice.json").write_text(json.dumps(policy_doc))
        text += "policy_file = alice.json\n"
    path = tmp_path / "credentials"
    path.write_text(text)
    return path


def test_no_policy_is_every_rekognition_action_and_no_s3_object(tmp_path):
    authority = Authority(load_users(write_credentials(tmp_path, None)), "us-east-1", "0")
    alice = Caller("alice", "AKIDALICE")
    authority.authorize(alice, "DeleteCollection", {"CollectionId": "anything"})
    image = {"Image": {"S3Object": {"Bucket": "company-photos", "Name": "a.jpg"}}}
    with pytest.raises(InvalidS3ObjectException) as err:
        authority.authorize(alice, "DetectFaces", image)
    # The same words as for a missing object: nothing tells "forbidden" from "absent".
    assert "company-photos" not in err.value.message


def test_a_policy_grants_buckets_and_refuses_operations(tmp_path):
    doc = {
        "Statement": [
            {"Effect": "Allow", "Action": "rekognition:DetectFaces", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::ok/*"},
        ]
    }
    authority = Authority(load_users(write_credentials(tmp_path, doc)), "us-east-1", "0")
    alice = Caller("alice", "AKIDALICE")
    authority.authorize(
        alice, "DetectFaces", {"Image": {"S3Object": {"Bucket": "ok", "Name": "a"}}}
    )
    with pytest.raises(InvalidS3ObjectException):
        authority.authorize(
            alice, "DetectFaces", {"Image": {"S3Object": {"Bucket": "other", "Name": "a"}}}
        )
    with pytest.raises(AccessDeniedException, match="rekognition:CreateCollection"):
        authority.authorize(alice, "CreateCollection", {"CollectionId": "c"})


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", "no \\[section\\]"),
        ("[a]\naws_access_key_id = K\n", "needs aws_access_key_id and aws_secret_access_key"),
        (
            "[a]\naws_access_key_id = K\naws_secret_access_key = s\n"
            "[b]\naws_access_key_id = K\naws_secret_access_key = t\n",
            "reuses the access key id",
        ),
        (
            "[a]\naws_access_key_id = K\naws_secret_access_key = s\npolicy_file = nope.json\n",
            "cannot read",
        ),
        ("not an ini file", "not an AWS credentials file"),
    ],
)
def test_a_broken_credentials_file_is_refused_with_its_name(tmp_path, text, problem):
    path = tmp_path / "credentials"
    path.write_text(text)
    with pytest.raises(CredentialsError, match=problem) as err:
        load_users(path)
    assert str(path) in str(err.value)


def test_a_gate_runs_queues_and_refuses():
    gate = Gate("images", max_inflight=1, max_queue=1, max_wait=5)
    release = threading.Event()
    entered = []

    def hold() -> None:
        with gate.enter():
            entered.append(1)
            release.wait(5)

    first = threading.Thread(target=hold)
    first.start()
    while gate.inflight != 1:
        time.sleep(0.01)
    second = threading.Thread(target=hold)
    second.start()
    while gate.queued != 1:
        time.sleep(0.01)
    # One running, one waiting: the third is refused at once.
    with pytest.raises(ThrottlingException), gate.enter():
        pass
    release.set()
    first.join()
    second.join()
    assert entered == [1, 1] and gate.inflight == 0 and gate.queued == 0


def test_a_queued_request_gives_up_after_max_wait():
    gate = Gate("images", max_inflight=1, max_queue=4, max_wait=0.1)
    with gate.enter(), pytest.raises(ThrottlingException), gate.enter():
        pass
    assert gate.queued == 0 and gate.inflight == 0
