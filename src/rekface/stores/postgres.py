"""The PostgreSQL store: collections, faces, users, tags and request tokens in one PostgreSQL
database, shared by any number of `rekface serve` processes (replicas behind a load balancer).

Tables (``search.pg_schema`` owns them, migration 3; every item of a collection is keyed by its
incarnation, see ``base``)::

    rekface_collections(collection_id PK, incarnation UNIQUE, created, face_model_version,
                        face_count, user_count, version)
    rekface_tags(incarnation, key, value)                              PK (incarnation, key)
    rekface_faces(incarnation, face_id uuid, image_id uuid, external_image_id, user_id NULL,
                  vector bytea: box 4xf32, confidence f32, embedding Dxf32)
                                                                       PK (incarnation, face_id)
    rekface_users(incarnation, user_id, status, face_count, created)   PK (incarnation, user_id)
    rekface_requests(incarnation, operation, token, request_digest, response, expires)
    rekface_purges(incarnation PK, collection_id, retired)             DeleteCollection tombstones
    rekface_secrets(name PK, value)                                    the shared token secret

Consistency across processes: every write of a collection's items (faces, users, tags) first
locks the collection's row (``SELECT ... FOR UPDATE``), then changes the items, FaceCount,
UserCount and the version in the same transaction. Writers of one collection therefore take
turns, as SQLite's ``BEGIN IMMEDIATE`` makes them (writers of different collections do not wait
for each other), and under READ COMMITTED each statement after the lock sees every earlier
writer's commit: the user writes' snapshot cannot change under them, counts are exact, and each
write bumps the version by exactly one, which is what every process's search cache compares.
Retiring a collection deletes that same row, so it waits for the writers in progress and the
writers after it find the collection gone. Every transaction takes the collection row first, so
two of them never wait for each other in a cycle; a deadlock or serialization failure (from a
server configured with a stricter default isolation) is still retried, as it rolled everything
back.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from rekface.search import pg_schema
from rekface.stores.base import CollectionGone, QuotaExceeded, Store, TokenMismatch, TooManyTags
from rekface.stores.records import (
    ID_DTYPE,
    AddFacesResult,
    CollectionListing,
    CollectionRecord,
    FaceRecord,
    FaceTable,
    RequestToken,
    UserRecord,
    UsersChange,
    UserWrite,
    id_text,
)
from rekface.stores.users import UserPlan, UserSnapshot, result_from_json, result_json

log = logging.getLogger("rekface.stores.postgres")

T = TypeVar("T")

PURGE_BATCH = 5000
# A transaction that a deadlock or a serialization failure rolled back is run again, this many
# times at most, after a short random pause (the other transaction finishes meanwhile).
MAX_ATTEMPTS = 5
# A session left idle inside a transaction (a client process frozen mid-write) is ended by the
# server after this long, so that its row locks do not stop every writer of the collection.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000
# The name of the pagination tokens' secret in rekface_secrets.
TOKEN_SECRET_NAME = "token_secret"

_COLLECTION_COLUMNS = (
    "collection_id, incarnation::text, created, face_model_version, face_count, user_count, version"
)
_FACE_COLUMNS = "uuid_send(face_id), uuid_send(image_id), external_image_id, user_id, vector"
_HEADER = 5  # float32s before the embedding in ``vector``: box (4) and confidence


def _vector(face: FaceRecord) -> bytes:
    assert face.embedding is not None
    head = np.array([*face.box, face.confidence], "<f4")
    return head.tobytes() + np.asarray(face.embedding, "<f4").tobytes()


def _face(row: tuple, embeddings: bool = False) -> FaceRecord:
    face_id, image_id, external, user_id, vector = row
    values = np.frombuffer(vector, "<f4")
    w, h, left, top, confidence = (float(v) for v in values[:_HEADER])
    return FaceRecord(
        face_id=id_text(face_id),
        image_id=id_text(image_id),
        external_image_id=external,
        box=(w, h, left, top),
        confidence=confidence,
        user_id=user_id,
        embedding=values[_HEADER:].astype(np.float32) if embeddings else None,
    )


def _table(rows: list[tuple]) -> FaceTable:
    """Rows (face_id, image_id, external_image_id, user_id, vector) -> columns. A collection's
    faces all come from its one recognizer, so they share one embedding size."""
    if not rows:
        return FaceTable.empty()
    face_ids, image_ids, externals, users, vectors = zip(*rows, strict=True)
    values = np.frombuffer(b"".join(vectors), "<f4").reshape(len(rows), -1)
    return FaceTable(
        face_ids=np.frombuffer(b"".join(face_ids), ID_DTYPE).copy(),
        image_ids=np.frombuffer(b"".join(image_ids), ID_DTYPE).copy(),
        external_ids=np.array(externals, object),
        user_ids=np.array(users, object),
        boxes=np.ascontiguousarray(values[:, :4], np.float32),
        confidences=np.ascontiguousarray(values[:, 4], np.float32),
        embeddings=np.ascontiguousarray(values[:, _HEADER:], np.float32),
    )


# libpq's defaults wait minutes for an unreachable host or a peer that vanished (a failover, a
# dropped network path): ours, unless the DSN names its own, so a request fails in about a minute
# at most instead. statement_timeout cannot: it is the server's, and the server is what is gone.
CONNECTION_DEFAULTS = {
    "connect_timeout": "10",  # s, per connection attempt
    "keepalives": "1",
    "keepalives_idle": "30",  # s idle before probing the server
    "keepalives_interval": "10",
    "keepalives_count": "3",  # unanswered probes before the connection is dropped
    "tcp_user_timeout": "60000",  # ms that sent data may stay unacknowledged
}


def bounded_dsn(dsn: str) -> str:
    """``dsn`` with CONNECTION_DEFAULTS for the parameters it leaves unset."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    given = conninfo_to_dict(dsn)
    return make_conninfo(dsn, **{k: v for k, v in CONNECTION_DEFAULTS.items() if k not in given})


def _found(row: tuple | None) -> CollectionRecord:
    if row is None:
        raise CollectionGone()
    return CollectionRecord(*row)


def _uuids(ids: Iterable[str]) -> list[uuid.UUID]:
    return [uuid.UUID(i) for i in ids]


class PostgresStore(Store):
    """``token_secret`` None: the secret every process of this database shares
    (``shared_token_secret``), made once at random."""

    def __init__(
        self,
        dsn: str,
        token_secret: str | None = None,
        pool_size: int = 10,
        statement_timeout_ms: int = 30_000,
    ) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.dsn = dsn
        dsn = bounded_dsn(dsn)
        # The schema first, on a connection of its own: a wrong DSN or an old server fails here.
        with psycopg.connect(dsn, autocommit=True) as conn:
            pg_schema.migrate(conn, parts=(pg_schema.STORE,))
        settings = {"idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS)}
        if statement_timeout_ms:
            settings["statement_timeout"] = str(statement_timeout_ms)

        def configure(conn: Any) -> None:
            # SET, not the DSN's "options": poolers such as PgBouncer and RDS Proxy refuse those.
            for name, value in settings.items():
                conn.execute("SELECT set_config(%s, %s, false)", (name, value))

        self.pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            configure=configure,
            check=ConnectionPool.check_connection,  # a connection the server closed is replaced
            open=True,
            name="rekface-store",
        )
        super().__init__(token_secret or self.shared_token_secret())

    def close(self) -> None:
        self.pool.close()

    def shared_token_secret(self) -> str:
        """The pagination tokens' secret of this database: made at random by the first process
        that asks, then read by every other, so a token from one replica verifies on all."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO rekface_secrets (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (TOKEN_SECRET_NAME, secrets.token_hex(32)),
            )
            row = conn.execute(
                "SELECT value FROM rekface_secrets WHERE name = %s", (TOKEN_SECRET_NAME,)
            ).fetchone()
        return row[0]

    # -----------------------------------------------------------------------------------------
    # Connections and transactions

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """A pooled connection in autocommit: one statement, one transaction."""
        with self.pool.connection() as conn:
            yield conn

    def _write(self, work: Callable[[Any], T], pipeline: bool = False) -> T:
        """``work(conn)`` in one transaction, run again if a deadlock or a serialization failure
        rolled it back. Any other exception rolls it back and propagates.

        ``pipeline``: in psycopg's pipeline mode, where a statement is sent without waiting for
        the previous one's answer until a result is read: BEGIN, the collection's lock and the
        rows' write go in one round trip, the counts and COMMIT in a second (five round trips
        otherwise), so the collection's lock, which every replica's writes of the collection
        queue for, is held for two network round trips instead of four. (On loopback here the
        difference is within the noise: benchmarks/store_throughput.py; across a network to
        RDS/Aurora each round trip is ~0.5-1 ms.)"""
        import psycopg.errors

        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with (
                    self.pool.connection() as conn,
                    conn.pipeline() if pipeline else nullcontext(),
                    conn.transaction(),
                ):
                    return work(conn)
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
                if attempt == MAX_ATTEMPTS:
                    raise
                log.info("transaction rolled back by a conflict, attempt %d: retried", attempt)
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _snapshot(self) -> Iterator[Any]:
        """One consistent snapshot for several SELECTs."""
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    @staticmethod
    def _lock(conn: Any, collection: CollectionRecord, lock: bool = True) -> Any:
        """Ask for the collection's row; with ``lock``, locked until the transaction ends (every
        writer of the collection's items takes it first). Returns the cursor to read it from."""
        return conn.execute(
            f"SELECT {_COLLECTION_COLUMNS} FROM rekface_collections WHERE incarnation = %s"
            + (" FOR UPDATE" if lock else ""),
            (uuid.UUID(collection.incarnation),),
        )

    @classmethod
    def _current(
        cls, conn: Any, collection: CollectionRecord, lock: bool = False
    ) -> CollectionRecord:
        """The collection's row (locked, with ``lock``); CollectionGone if it is no more."""
        return _found(cls._lock(conn, collection, lock).fetchone())

    # -----------------------------------------------------------------------------------------
    # Collections

    def _insert_collection(self, record: CollectionRecord, tags: dict[str, str]) -> bool:
        def work(conn: Any) -> bool:
            row = conn.execute(
                "INSERT INTO rekface_collections VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (collection_id) DO NOTHING RETURNING 1",
                (
                    record.collection_id,
                    uuid.UUID(record.incarnation),
                    record.created,
                    record.face_model_version,
                    record.face_count,
                    record.user_count,
                    record.version,
                ),
            ).fetchone()
            if row is None:
                return False
            if tags:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO rekface_tags VALUES (%s, %s, %s)",
                        [(uuid.UUID(record.incarnation), k, v) for k, v in tags.items()],
                    )
            return True

        return self._write(work)

    def _read_collection(self, collection_id: str) -> CollectionRecord | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {_COLLECTION_COLUMNS} FROM rekface_collections WHERE collection_id = %s",
                (collection_id,),
            ).fetchone()
        return None if row is None else CollectionRecord(*row)

    def _scan_collections(self, after: str | None, limit: int) -> list[CollectionListing]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT collection_id, face_model_version FROM rekface_collections "
                "WHERE collection_id > %s ORDER BY collection_id LIMIT %s",
                (after or "", limit),
            ).fetchall()
        return [CollectionListing(*r) for r in rows]

    def _retire_collection(self, record: CollectionRecord) -> bool:
        def work(conn: Any) -> bool:
            gone = conn.execute(
                "DELETE FROM rekface_collections WHERE collection_id = %s AND incarnation = %s "
                "RETURNING 1",
                (record.collection_id, uuid.UUID(record.incarnation)),
            ).fetchone()
            if gone is None:
                return False
            conn.execute(
                "INSERT INTO rekface_purges VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (uuid.UUID(record.incarnation), record.collection_id, time.time()),
            )
            return True

        return self._write(work)

    def _purge_batch(self, incarnation: str) -> bool:
        inc = uuid.UUID(incarnation)
        with self._conn() as conn:
            for table in ("rekface_faces", "rekface_users", "rekface_requests", "rekface_tags"):
                cur = conn.execute(
                    f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
                    f"SELECT ctid FROM {table} WHERE incarnation = %s LIMIT %s))",
                    (inc, PURGE_BATCH),
                )
                if cur.rowcount:
                    return True
        return False

    def _drop_tombstone(self, incarnation: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "DELETE FROM rekface_purges WHERE incarnation = %s", (uuid.UUID(incarnation),)
            )

    def _tombstones(self) -> Iterable[str]:
        with self._conn() as conn:
            rows = conn.execute("SELECT incarnation::text FROM rekface_purges").fetchall()
        return [r[0] for r in rows]

    # -----------------------------------------------------------------------------------------
    # Faces

    def _insert_faces(
        self, collection: CollectionRecord, faces: list[FaceRecord]
    ) -> AddFacesResult:
        inc = uuid.UUID(collection.incarnation)

        def work(conn: Any) -> AddFacesResult:
            locked = self._lock(conn, collection)  # sent, not waited for (pipeline)
            inserted = conn.execute(
                "INSERT INTO rekface_faces "
                "SELECT %s, f, i, e, u, v FROM unnest("
                "%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::bytea[]) AS t(f, i, e, u, v) "
                "ON CONFLICT DO NOTHING RETURNING face_id::text",
                (
                    inc,
                    _uuids(f.face_id for f in faces),
                    _uuids(f.image_id for f in faces),
                    [f.external_image_id for f in faces],
                    [f.user_id for f in faces],
                    [_vector(f) for f in faces],
                ),
            )
            current = _found(locked.fetchone())  # CollectionGone: the insert is rolled back
            stored = {r[0] for r in inserted.fetchall()}
            added = [f for f in faces if f.face_id in stored]
            if not added:
                return AddFacesResult(current, [], [])
            if current.face_count + len(added) > self.max_faces_per_collection:
                raise QuotaExceeded()  # rolls the faces back
            after = self._bump(conn, current, len(added))
            return AddFacesResult(after, added, [after.version])

        return self._write(work, pipeline=True)

    @staticmethod
    def _bump(conn: Any, current: CollectionRecord, faces: int) -> CollectionRecord:
        """FaceCount += ``faces``, version + 1. ``current`` was read under the collection's lock,
        so the row after is known without reading it back: the UPDATE's answer is not waited
        for, and goes to the server with the COMMIT (one round trip for both, in a pipeline)."""
        conn.execute(
            "UPDATE rekface_collections SET face_count = face_count + %s, version = version + 1 "
            "WHERE incarnation = %s",
            (faces, uuid.UUID(current.incarnation)),
        )
        return replace(current, face_count=current.face_count + faces, version=current.version + 1)

    @staticmethod
    def _face_rows(conn: Any, inc: str, face_ids: list[str], embeddings: bool) -> list[FaceRecord]:
        if not face_ids:
            return []
        with conn.cursor(binary=True) as cur:
            rows = cur.execute(
                f"SELECT {_FACE_COLUMNS} FROM rekface_faces "
                "WHERE incarnation = %s AND face_id = ANY(%s)",
                (uuid.UUID(inc), _uuids(dict.fromkeys(face_ids))),
            ).fetchall()
        return [_face(r, embeddings) for r in rows]

    def _read_faces(
        self, collection: CollectionRecord, face_ids: list[str], embeddings: bool
    ) -> list[FaceRecord]:
        with self._conn() as conn:
            return self._face_rows(conn, collection.incarnation, face_ids, embeddings)

    def _scan(self, where: str, params: tuple, after: str | None, limit: int) -> list[FaceRecord]:
        if after is not None:
            where += " AND face_id > %s"
            params += (uuid.UUID(after),)
        with self._conn() as conn, conn.cursor(binary=True) as cur:
            rows = cur.execute(
                f"SELECT {_FACE_COLUMNS} FROM rekface_faces WHERE {where} "
                "ORDER BY face_id LIMIT %s",
                (*params, limit),
            ).fetchall()
        return [_face(r) for r in rows]

    def _scan_faces(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[FaceRecord]:
        return self._scan("incarnation = %s", (uuid.UUID(collection.incarnation),), after, limit)

    def _scan_user_faces(
        self, collection: CollectionRecord, user_id: str, after: str | None, limit: int
    ) -> list[FaceRecord]:
        return self._scan(
            "incarnation = %s AND user_id = %s",
            (uuid.UUID(collection.incarnation), user_id),
            after,
            limit,
        )

    def _remove_faces(
        self, collection: CollectionRecord, face_ids: list[str]
    ) -> tuple[list[str], list[int], CollectionRecord]:
        def work(conn: Any) -> tuple[list[str], list[int], CollectionRecord]:
            locked = self._lock(conn, collection)  # sent, not waited for (pipeline)
            deleted = conn.execute(
                "DELETE FROM rekface_faces WHERE incarnation = %s AND face_id = ANY(%s) "
                "AND user_id IS NULL RETURNING face_id::text",
                (uuid.UUID(collection.incarnation), _uuids(face_ids)),
            )
            current = _found(locked.fetchone())  # CollectionGone: the delete is rolled back
            gone = {r[0] for r in deleted.fetchall()}
            removed = [f for f in face_ids if f in gone]
            if not removed:
                return [], [], current
            after = self._bump(conn, current, -len(removed))
            return removed, [after.version], after

        return self._write(work, pipeline=True)

    def _load_face_table(
        self, collection: CollectionRecord
    ) -> tuple[FaceTable, CollectionRecord] | None:
        with self._snapshot() as conn:
            try:
                current = self._current(conn, collection)
            except CollectionGone:
                return None
            with conn.cursor(binary=True) as cur:
                rows = cur.execute(
                    f"SELECT {_FACE_COLUMNS} FROM rekface_faces WHERE incarnation = %s",
                    (uuid.UUID(collection.incarnation),),
                ).fetchall()
        return _table(rows), current

    # -----------------------------------------------------------------------------------------
    # Users

    def _write_user(
        self,
        collection: CollectionRecord,
        user_id: str,
        face_ids: list[str],
        embeddings: bool,
        token: RequestToken | None,
        plan: Callable[[UserSnapshot], UserPlan],
    ) -> UserWrite:
        inc = collection.incarnation
        key = uuid.UUID(inc)

        def work(conn: Any) -> UserWrite:
            # The collection's lock: no other writer of its faces or users until we commit.
            current = self._current(conn, collection, lock=True)
            if token is not None:
                replayed = self._replay(conn, key, token)
                if replayed is not None:
                    return replayed
            user = self._user_row(conn, key, user_id)
            members = [
                r[0]
                for r in conn.execute(
                    "SELECT face_id::text FROM rekface_faces WHERE incarnation = %s "
                    "AND user_id = %s ORDER BY face_id",
                    (key, user_id),
                )
            ]
            faces = {
                f.face_id: f for f in self._face_rows(conn, inc, face_ids + members, embeddings)
            }
            p = plan(UserSnapshot(current, user, members, faces))  # may raise: rolled back
            if p.assign:
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE rekface_faces SET user_id = %s "
                        "WHERE incarnation = %s AND face_id = %s",
                        [(u, key, uuid.UUID(f)) for f, u in p.assign.items()],
                    )
            after_user = p.user_after
            if after_user is None:
                conn.execute(
                    "DELETE FROM rekface_users WHERE incarnation = %s AND user_id = %s",
                    (key, user_id),
                )
            elif p.created:
                conn.execute(
                    "INSERT INTO rekface_users VALUES (%s, %s, %s, %s, %s)",
                    (key, user_id, after_user.status, after_user.face_count, time.time()),
                )
            else:
                conn.execute(
                    "UPDATE rekface_users SET status = %s, face_count = %s "
                    "WHERE incarnation = %s AND user_id = %s",
                    (after_user.status, after_user.face_count, key, user_id),
                )
            row = conn.execute(
                "UPDATE rekface_collections SET user_count = user_count + %s, "
                f"version = version + %s WHERE incarnation = %s RETURNING {_COLLECTION_COLUMNS}",
                (p.user_count_delta, 1 if p.assign else 0, key),
            ).fetchone()
            after = CollectionRecord(*row)
            result = p.result
            if p.assign:
                result = replace(result, change=UsersChange(after, dict(p.assign), [after.version]))
            if token is not None:
                # An expired record of the same token is replaced (it may be used again).
                conn.execute(
                    "INSERT INTO rekface_requests VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (incarnation, operation, token) DO UPDATE SET "
                    "request_digest = EXCLUDED.request_digest, response = EXCLUDED.response, "
                    "expires = EXCLUDED.expires",
                    (
                        key,
                        token.operation,
                        token.token,
                        token.digest,
                        result_json(result),
                        time.time() + self.request_token_ttl,
                    ),
                )
            return result

        return self._write(work)

    @staticmethod
    def _replay(conn: Any, key: uuid.UUID, token: RequestToken) -> UserWrite | None:
        row = conn.execute(
            "SELECT request_digest, response FROM rekface_requests WHERE incarnation = %s "
            "AND operation = %s AND token = %s AND expires > %s",
            (key, token.operation, token.token, time.time()),
        ).fetchone()
        if row is None:
            return None
        if row[0] != token.digest:
            raise TokenMismatch()
        return result_from_json(row[1])

    @staticmethod
    def _user_row(conn: Any, key: uuid.UUID, user_id: str) -> UserRecord | None:
        row = conn.execute(
            "SELECT user_id, status, face_count FROM rekface_users "
            "WHERE incarnation = %s AND user_id = %s",
            (key, user_id),
        ).fetchone()
        return None if row is None else UserRecord(*row)

    def _read_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None:
        with self._snapshot() as conn:
            self._current(conn, collection)
            return self._user_row(conn, uuid.UUID(collection.incarnation), user_id)

    def _read_users(self, collection: CollectionRecord, user_ids: list[str]) -> list[UserRecord]:
        with self._snapshot() as conn:
            self._current(conn, collection)
            rows = conn.execute(
                "SELECT user_id, status, face_count FROM rekface_users "
                "WHERE incarnation = %s AND user_id = ANY(%s)",
                (uuid.UUID(collection.incarnation), user_ids),
            ).fetchall()
        return [UserRecord(*r) for r in rows]

    def _scan_users(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[UserRecord]:
        with self._snapshot() as conn:
            self._current(conn, collection)
            rows = conn.execute(
                "SELECT user_id, status, face_count FROM rekface_users WHERE incarnation = %s "
                "AND user_id > %s ORDER BY user_id LIMIT %s",
                (uuid.UUID(collection.incarnation), after or "", limit),
            ).fetchall()
        return [UserRecord(*r) for r in rows]

    # -----------------------------------------------------------------------------------------
    # Tags

    def _update_tags(
        self, record: CollectionRecord, put: dict[str, str], remove: list[str], max_tags: int
    ) -> None:
        key = uuid.UUID(record.incarnation)

        def work(conn: Any) -> None:
            self._current(conn, record, lock=True)
            with conn.cursor() as cur:
                if put:
                    cur.executemany(
                        "INSERT INTO rekface_tags VALUES (%s, %s, %s) "
                        "ON CONFLICT (incarnation, key) DO UPDATE SET value = EXCLUDED.value",
                        [(key, k, v) for k, v in put.items()],
                    )
                if remove:
                    cur.execute(
                        "DELETE FROM rekface_tags WHERE incarnation = %s AND key = ANY(%s)",
                        (key, list(remove)),
                    )
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM rekface_tags WHERE incarnation = %s", (key,)
            ).fetchone()
            if count > max_tags:
                raise TooManyTags()  # rolls the transaction back

        self._write(work)

    def _read_tags(self, record: CollectionRecord) -> dict[str, str] | None:
        with self._snapshot() as conn:
            try:
                self._current(conn, record)
            except CollectionGone:
                return None
            rows = conn.execute(
                "SELECT key, value FROM rekface_tags WHERE incarnation = %s",
                (uuid.UUID(record.incarnation),),
            ).fetchall()
        return dict(rows)
