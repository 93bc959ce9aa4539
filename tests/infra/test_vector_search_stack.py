"""The stack with ``search=s3vectors`` (the RekfaceApiKey stack of the session's synth): a vector
bucket, every function with the store told to search on it, and each role granted only the S3
Vectors calls its operation makes, on this deployment's indexes. The default stack has none."""

from __future__ import annotations

from typing import Any

import pytest
from rekface_infra.vectors import VECTOR_ACTIONS
from test_stack import actions, function_role, resources, role_statements

from rekface.spec.operations import OPERATIONS, Access


@pytest.fixture(scope="module")
def tpl_vec(synth) -> dict[str, Any]:
    assert synth.error == "", synth.error
    return synth.templates["RekfaceApiKey"]


def bucket_id(tpl: dict[str, Any]) -> str:
    (found,) = resources(tpl, "AWS::S3Vectors::VectorBucket")
    return found


def test_the_vector_bucket(tpl_vec, synth):
    bucket = tpl_vec["Resources"][bucket_id(tpl_vec)]
    assert bucket["Properties"]["EncryptionConfiguration"] == {"SseType": "AES256"}
    name = bucket["Properties"]["VectorBucketName"]["Fn::Join"]
    assert name[1][0] == "rekface"  # rekface-<stack UUID>: lowercase, 44 characters
    assert "VectorBucketName" in tpl_vec["Outputs"]
    # The default stack searches in memory: no vector bucket, no S3 Vectors grant.
    assert resources(synth.templates["Rekface"], "AWS::S3Vectors::VectorBucket") == {}
    assert "s3vectors" not in str(synth.templates["Rekface"]["Resources"])


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.name)
def test_each_role_gets_only_its_operations_calls(tpl_vec, op):
    fn = tpl_vec["Resources"][f"{op.name}Function"]["Properties"]
    statements = role_statements(tpl_vec, function_role(tpl_vec, f"{op.name}Function"))
    assert actions(statements, "s3vectors:") == set(VECTOR_ACTIONS.get(op.name, ()))
    for st in statements:
        if actions([st], "s3vectors:"):
            join = st["Resource"]["Fn::Join"][1]
            assert join[0] == {"Fn::GetAtt": [bucket_id(tpl_vec), "VectorBucketArn"]}
            assert join[1] == "/index/rekface-*"
    env = fn["Environment"]["Variables"]
    if op.access is not Access.NONE:
        assert env["REKFACE_SEARCH"] == "s3vectors"
        assert env["REKFACE_VECTOR_INDEX_PREFIX"] == "rekface-"
        assert env["REKFACE_VECTOR_BUCKET"]["Fn::Join"][1][0] == "rekface"
    # Searches only read; no operation outside the table may touch vectors.
    if op.access is Access.READ:
        assert not actions(statements, "s3vectors:") - {
            "s3vectors:QueryVectors",
            "s3vectors:GetVectors",
        }


def test_the_s3_flows_can_index_and_search(tpl_vec):
    statements = role_statements(tpl_vec, function_role(tpl_vec, "S3EventsFunction"))
    expected = set(VECTOR_ACTIONS["IndexFaces"]) | set(VECTOR_ACTIONS["SearchFacesByImage"])
    assert actions(statements, "s3vectors:") == expected
