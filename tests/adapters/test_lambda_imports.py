"""What each Lambda entry point of functions/ imports at init, in a fresh interpreter (as a cold
start does): data functions load no model code, image functions load the engine at init, the
POST / router loads neither operations nor the X-Ray SDK unless tracing is on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rekface.spec.operations import OPERATIONS

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "onnxruntime", "PIL")
WATCHED = (*HEAVY, "aws_xray_sdk", "rekface.engine.faces", "rekface.operations", "boto3")

IMPORT_APP = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""

# A data function's first request, on DynamoDB (moto): still no model code afterwards.
FIRST_REQUEST = """
import importlib.util, json, sys
import boto3
from moto import mock_aws
with mock_aws():
    from rekface.stores.dynamodb import create_table
    create_table(boto3.client("dynamodb", region_name="us-east-1"), "rekface")
    spec = importlib.util.spec_from_file_location("app", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = json.loads(open(sys.argv[3]).read())
    class Context:
        function_name = "f"; memory_limit_in_mb = 512; aws_request_id = "r"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    out = module.handler(event, Context())
    assert out["statusCode"] == 200, out
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""


def run_fresh(script: str, function: str, *, tracing: bool = False, extra: tuple = ()) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "REKFACE_"))}
    env.update(
        PYTHONPATH=str(REPO / "src"),
        AWS_DEFAULT_REGION="us-east-1",
        REKFACE_STORE="dynamodb",
        REKFACE_TABLE_NAME="rekface",
        REKFACE_FUNCTIONS=json.dumps({op.name: op.snake for op in OPERATIONS}),
    )
    env.pop("LAMBDA_TASK_ROOT", None)
    if tracing:
        env["LAMBDA_TASK_ROOT"] = str(REPO / "functions" / function)  # as in Lambda: on
    else:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    app = REPO / "functions" / function / "app.py"
    out = subprocess.run(
        [sys.executable, "-c", script, str(app), json.dumps(WATCHED), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


DATA = [op for op in OPERATIONS if not op.reads_images]
IMAGE = [op for op in OPERATIONS if op.reads_images]


@pytest.mark.parametrize("op", DATA, ids=lambda op: op.name)
def test_data_functions_load_no_model_code_at_init(op):
    loaded = run_fresh(IMPORT_APP, op.snake)
    assert not loaded & {*HEAVY, "rekface.engine.faces"}, loaded


@pytest.mark.parametrize("op", IMAGE, ids=lambda op: op.name)
def test_image_functions_load_the_engine_at_init(op):
    loaded = run_fresh(IMPORT_APP, op.snake)
    assert {"numpy", "onnxruntime", "rekface.engine.faces"} <= loaded


@pytest.mark.parametrize("function", ["list_collections"])
def test_a_data_function_answers_without_model_code(function):
    evt = REPO / "events" / f"{function}.json"
    loaded = run_fresh(FIRST_REQUEST, function, extra=(str(evt),))
    # numpy comes with the store (embeddings are numpy arrays); onnxruntime and Pillow never.
    assert not loaded & {"onnxruntime", "PIL", "rekface.engine.faces"}, loaded


def test_router_imports_no_operation_code_and_no_xray_sdk_when_tracing_is_off():
    loaded = run_fresh(IMPORT_APP, "wire_protocol")
    assert not loaded & {*HEAVY, "aws_xray_sdk", "rekface.operations", "boto3"}, loaded


def test_router_imports_the_xray_sdk_when_tracing_is_on():
    """The check above can fail: with tracing on, Powertools' Tracer brings the SDK."""
    assert "aws_xray_sdk" in run_fresh(IMPORT_APP, "wire_protocol", tracing=True)
