"""Lambda's runtime as it is: a uid with no passwd entry and no HOME. Only the SQLite store keeps
data under the home directory, so nothing else may ask for it."""

from __future__ import annotations

import json
import pwd
from pathlib import Path

import boto3
import pytest
from lambda_local import LambdaContext, event, load_handler
from moto import mock_aws

from rekface.adapters import lambda_api
from rekface.settings import Settings
from rekface.stores.dynamodb import create_table


@pytest.fixture
def homeless(monkeypatch):
    """No HOME and no passwd entry for this uid, as in Lambda's sandbox."""
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("REKFACE_DATA_DIR", raising=False)

    def no_entry(uid: int):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(RuntimeError):  # the patch bites: Path.home() cannot answer
        Path.home()


def test_dynamodb_settings_need_no_home(homeless):
    settings = Settings.from_env({"REKFACE_STORE": "dynamodb", "REKFACE_TABLE_NAME": "t"})
    assert settings.store == "dynamodb" and settings.table_name == "t"
    assert not str(settings.data_dir).startswith("~")


def test_the_sqlite_store_still_needs_a_home_or_a_data_dir(homeless):
    with pytest.raises(RuntimeError):
        Settings.from_env({"REKFACE_STORE": "sqlite"})
    explicit = Settings.from_env({"REKFACE_STORE": "sqlite", "REKFACE_DATA_DIR": "/srv/rekface"})
    assert explicit.data_dir == Path("/srv/rekface")


def test_home_is_used_when_set_for_other_stores():
    settings = Settings.from_env({"REKFACE_STORE": "dynamodb", "HOME": "/home/ops"})
    assert settings.data_dir == Path("/home/ops/.rekface")


def test_a_data_function_answers_without_a_home(homeless, monkeypatch):
    monkeypatch.setenv("REKFACE_STORE", "dynamodb")
    monkeypatch.setenv("REKFACE_TABLE_NAME", "rekface")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name="us-east-1"), "rekface")
        lambda_api.reset()
        try:
            out = load_handler("list_collections")(event("list_collections"), LambdaContext())
        finally:
            lambda_api.reset()
    assert out["statusCode"] == 200, out
    assert json.loads(out["body"])["CollectionIds"] == []
