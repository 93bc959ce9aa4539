"""No client mistake gets a 5xx on the PostgreSQL store either: the malformed-member and hostile
JSON suites of test_no_5xx.py on a postgres-store context, and strings PostgreSQL itself cannot
hold (text with NUL, lone surrogates) or holds differently (wide Unicode), sent into an existing
collection so that they would reach the store if the validation let them through."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from test_no_5xx import test_hostile_json_never_gets_a_5xx as hostile_json_flow
from test_no_5xx import test_malformed_members_never_get_a_5xx as malformed_members_flow

from rekface.adapters.bootstrap import build_context
from rekface.adapters.dispatch import Dispatcher
from rekface.settings import Settings
from rekface.spec.operations import OPERATIONS

OPS = [op.name for op in OPERATIONS]
# What a JSON body can carry that a PostgreSQL text column cannot (NUL), that is no character
# (a lone surrogate), and a symbol outside the Basic Multilingual Plane that no pattern allows.
AWKWARD = ["a\u0000b", "\u0000", "\ud800", "x\udfffy", "\U0001f600"]


@pytest.fixture(scope="module")
def pg_ctx(engine, live_postgres, tmp_path_factory) -> Iterator:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("no5xx-pg"),
        store="postgres",
        pg_dsn=live_postgres.new_database(),
    )
    ctx = build_context(settings, engine=engine)
    yield ctx
    ctx.store.close()


@pytest.mark.parametrize("op", OPS)
def test_malformed_members_never_get_a_5xx(pg_ctx, op):
    malformed_members_flow(pg_ctx, op)


@pytest.mark.parametrize("op", OPS)
def test_hostile_json_never_gets_a_5xx(pg_ctx, op):
    hostile_json_flow(pg_ctx, op)


def _send(dispatcher: Dispatcher, op: str, request: dict):
    # ensure_ascii: a lone surrogate travels as its \\u escape, as a client's JSON would send it.
    return dispatcher.handle_operation(op, json.dumps(request))


def test_strings_postgres_cannot_hold_are_refused_before_the_store(pg_ctx):
    d = Dispatcher(pg_ctx)
    assert _send(d, "CreateCollection", {"CollectionId": "awkward"}).status == 200
    assert _send(d, "CreateUser", {"CollectionId": "awkward", "UserId": "u"}).status == 200
    arn = "arn:aws:rekognition:us-east-1:000000000000:collection/awkward"
    for s in AWKWARD:
        requests = [
            ("CreateCollection", {"CollectionId": "awkward2", "Tags": {"k": s}}),
            ("CreateCollection", {"CollectionId": "awkward2", "Tags": {s: "v"}}),
            ("TagResource", {"ResourceArn": arn, "Tags": {"k": s}}),
            ("TagResource", {"ResourceArn": arn, "Tags": {s: "v"}}),
            ("UntagResource", {"ResourceArn": arn, "TagKeys": [s]}),
            ("CreateUser", {"CollectionId": "awkward", "UserId": s}),
            ("CreateUser", {"CollectionId": "awkward", "UserId": "v", "ClientRequestToken": s}),
            ("DeleteUser", {"CollectionId": "awkward", "UserId": s}),
            ("ListFaces", {"CollectionId": "awkward", "UserId": s}),
            ("ListFaces", {"CollectionId": "awkward", "FaceIds": [s]}),
            ("ListFaces", {"CollectionId": "awkward", "NextToken": s}),
            ("ListUsers", {"CollectionId": "awkward", "NextToken": s}),
            ("ListCollections", {"NextToken": s}),
            ("DeleteFaces", {"CollectionId": "awkward", "FaceIds": [s]}),
            ("AssociateFaces", {"CollectionId": "awkward", "UserId": "u", "FaceIds": [s]}),
            ("SearchUsers", {"CollectionId": "awkward", "UserId": s}),
            ("SearchFaces", {"CollectionId": "awkward", "FaceId": s}),
        ]
        for op, request in requests:
            response = _send(d, op, request)
            assert 400 <= response.status < 500, (op, request, response.body[:300])
    # Wide characters that the patterns allow are kept exactly.
    tags = {"ключ": "日本語\u3000テキスト", "k": "é" * 256, "\U00020000": "\U00020001"}
    assert _send(d, "TagResource", {"ResourceArn": arn, "Tags": tags}).status == 200
    listed = _send(d, "ListTagsForResource", {"ResourceArn": arn})
    assert json.loads(listed.body)["Tags"] == tags
