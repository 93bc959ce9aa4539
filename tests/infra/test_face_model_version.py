"""The stack's default face model version: CDK context ``face_model_version`` (default "1.0"),
given to every function with the store as REKFACE_FACE_MODEL_VERSION (CreateCollection stamps
it on new collections, CompareFaces embeds with its pack)."""

from __future__ import annotations

import pytest
from rekface_infra.config import StackConfig


def test_context_names_the_default_version():
    assert StackConfig().face_model_version == "1.0"
    assert StackConfig.from_context({"face_model_version": "2.0"}.get).face_model_version == "2.0"
    with pytest.raises(ValueError, match=r"face_model_version must match \[0-9\.\]\+"):
        StackConfig.from_context({"face_model_version": "v2"}.get)


def test_functions_with_the_store_get_it(synth):
    functions = synth.template().find_resources("AWS::Lambda::Function")
    with_store = [
        props["Properties"]["Environment"]["Variables"]
        for props in functions.values()
        if "REKFACE_STORE" in props["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(with_store) >= 21
    assert {env["REKFACE_FACE_MODEL_VERSION"] for env in with_store} == {"1.0"}
