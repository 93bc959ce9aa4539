"""The boto3 flows of the collections (and users) suites, unchanged, against `rekface serve` on
each search backend on an external engine: S3 Vectors (moto, with the exact QueryVectors double)
and PostgreSQL + pgvector (a live server, HNSW forced even on these small collections). The
in-memory backend runs them in their own modules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from live_server import start, stop
from moto import mock_aws
from test_collections_boto3 import test_client_mistakes_are_400s as client_mistakes_flow
from test_collections_boto3 import test_full_collection_flow as collection_flow
from test_users_boto3 import test_users_flow as users_flow

from rekface.adapters.bootstrap import build_context, build_search
from rekface.search.indexed import IndexedSearch
from rekface.settings import Settings
from tests.engines import VECTOR_BUCKET, s3vectors_client


@pytest.fixture(scope="module", params=["s3vectors", "pgvector"])
def backend_client(request, engine, tmp_path_factory) -> Iterator[tuple[str, Any, Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp(f"serve-{request.param}"))
    with mock_aws():
        if request.param == "pgvector":
            dsn = request.getfixturevalue("live_postgres").dsn
            settings = replace(settings, search="pgvector", pg_dsn=dsn)
            ctx = build_context(settings, engine=engine)
            ctx.search.exact_below = 0  # the HNSW graph answers, not a sequential scan
        else:
            settings = replace(settings, search="s3vectors", vector_bucket=VECTOR_BUCKET)
            ctx = build_context(replace(settings, search="memory"), engine=engine)
            ctx.search = build_search(settings, ctx.store, s3vectors_client(page_size=5))
        assert isinstance(ctx.search, IndexedSearch)
        server, client = start(ctx)
        try:
            yield request.param, client, ctx
        finally:
            stop(server)


def test_collection_flow(backend_client):
    kind, client, ctx = backend_client
    names = {"s3vectors": "S3VectorsSearch", "pgvector": "PgVectorSearch"}
    assert type(ctx.search).__name__ == names[kind]
    collection_flow(client)


def test_client_mistakes(backend_client):
    _, client, _ = backend_client
    client_mistakes_flow(client)


def test_users_flow(backend_client):
    _, client, _ = backend_client
    users_flow(client)
