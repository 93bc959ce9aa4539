"""The boto3 flows of the collections and users suites, unchanged, against `rekface serve` on the
PostgreSQL store: with the in-memory search, and with pgvector search in the same database (one
DSN for both: their migrations live side by side, see search.pg_schema)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from live_server import start, stop
from test_collections_boto3 import test_client_mistakes_are_400s as client_mistakes_flow
from test_collections_boto3 import test_full_collection_flow as collection_flow
from test_users_boto3 import test_users_flow as users_flow

from rekface.adapters.bootstrap import build_context
from rekface.settings import Settings


@pytest.fixture(scope="module", params=["memory", "pgvector"])
def postgres_client(request, engine, live_postgres, tmp_path_factory) -> Iterator[tuple[Any, Any]]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp(f"pg-store-{request.param}"),
        store="postgres",
        search=request.param,
        pg_dsn=live_postgres.new_database(),
    )
    ctx = build_context(settings, engine=engine)
    if request.param == "pgvector":
        ctx.search.exact_below = 0  # the HNSW graph answers, not a sequential scan
    server, client = start(ctx)
    try:
        yield client, ctx
    finally:
        stop(server)
        ctx.store.close()


def test_collection_flow(postgres_client):
    client, ctx = postgres_client
    assert type(ctx.store).__name__ == "PostgresStore"
    collection_flow(client)


def test_client_mistakes(postgres_client):
    client, _ = postgres_client
    client_mistakes_flow(client)


def test_users_flow(postgres_client):
    client, _ = postgres_client
    users_flow(client)


def test_one_database_holds_store_and_vectors(postgres_client):
    import psycopg

    from rekface.search import pg_schema

    _, ctx = postgres_client
    with psycopg.connect(ctx.store.dsn) as conn:
        want = {3} if ctx.settings.search == "memory" else {1, 2, 3}
        assert pg_schema.applied(conn) == want
