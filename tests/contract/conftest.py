"""The two stores under one contract: every test of this folder runs on SQLite (a tmp file) and
on DynamoDB (moto), through the same ``Store`` interface.

moto runs each call in the caller's thread without a lock, while DynamoDB executes every call
(and every transaction) atomically and in isolation; ``SerializedClient`` gives moto that
guarantee, so the thread-pool tests exercise rekface's conditional writes and retries, not moto's
own races.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rekface.search.memory import InMemoryExactSearch
from rekface.stores.base import Store
from rekface.stores.dynamodb import DynamoDBStore, create_table
from rekface.stores.records import CollectionRecord
from rekface.stores.sqlite import SqliteStore

SECRET = "contract-secret"
TABLE = "rekface-contract"


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

    def raw_faces(self, incarnation: str) -> int:
        raise NotImplementedError

    def raw_items(self, incarnation: str) -> int:
        raise NotImplementedError

    def associate(self, collection: CollectionRecord, face_id: str, user_id: str) -> None:
        """Put a face in a user as the user operations (issue 11) will: arranged directly."""
        raise NotImplementedError

    def new_store(self, **kwargs: Any) -> Store:
        """Another store object on the same data (a second process)."""
        raise NotImplementedError


class SqliteBackend(Backend):
    kind = "sqlite"

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

    def associate(self, collection: CollectionRecord, face_id: str, user_id: str) -> None:
        with self.store._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO users VALUES (?, ?, 'ACTIVE', 0, 0)",
                (collection.incarnation, user_id),
            )
            conn.execute(
                "UPDATE faces SET user_id = ? WHERE incarnation = ? AND face_id = ?",
                (user_id, collection.incarnation, uuid.UUID(face_id).bytes),
            )
            conn.execute(
                "UPDATE users SET face_count = face_count + 1 WHERE incarnation = ? "
                "AND user_id = ?",
                (collection.incarnation, user_id),
            )
            conn.execute(
                "UPDATE collections SET user_count = (SELECT COUNT(*) FROM users "
                "WHERE incarnation = ?), version = version + 1 WHERE incarnation = ?",
                (collection.incarnation, collection.incarnation),
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

    def associate(self, collection: CollectionRecord, face_id: str, user_id: str) -> None:
        inc = collection.incarnation
        self.client.update_item(
            TableName=TABLE,
            Key={"PK": {"S": f"F#{inc}#{face_id[0]}"}, "SK": {"S": face_id}},
            UpdateExpression="SET UserId = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
        )
        self.client.update_item(
            TableName=TABLE,
            Key={"PK": {"S": f"U#{inc}"}, "SK": {"S": user_id}},
            UpdateExpression="SET #s = :s ADD FaceIds :f, FaceCount :one",
            ExpressionAttributeNames={"#s": "Status"},
            ExpressionAttributeValues={
                ":s": {"S": "ACTIVE"},
                ":f": {"SS": [face_id]},
                ":one": {"N": "1"},
            },
        )
        users = sum(1 for it in self._scan() if it["PK"]["S"] == f"U#{inc}")
        self.client.update_item(
            TableName=TABLE,
            Key={"PK": {"S": f"C#{collection.collection_id}"}, "SK": {"S": "C"}},
            UpdateExpression="SET UserCount = :n ADD Version :one",
            ExpressionAttributeValues={":n": {"N": str(users)}, ":one": {"N": "1"}},
        )


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(request, tmp_path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path)
    else:
        with mock_aws():
            yield DynamoBackend()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


@pytest.fixture
def search(store: Store) -> InMemoryExactSearch:
    return InMemoryExactSearch(store)
