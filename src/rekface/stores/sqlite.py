"""The embedded store of `rekface serve`: one SQLite file, ``<data_dir>/rekface.db``.

FaceIds and ImageIds are stored as the UUIDs' 16 bytes (their byte order is the order of the
text form) and a face's fixed-size fields as one blob (532 bytes with 128-d embeddings): loading a
collection for search then costs five column values per face instead of eight, and no float
conversions.

WAL journal (readers never wait for the writer; a crash loses at most the last commit), one
connection per thread, every write one ``BEGIN IMMEDIATE`` transaction, so FaceCount and the
collection version change in the same commit as the faces. Several processes may share the file.

Tables (every item of a collection is keyed by its incarnation, see ``base``)::

    collections(collection_id PK, incarnation UNIQUE, created, face_model_version,
                face_count, user_count, version)
    tags(incarnation, key, value)                           PK (incarnation, key)
    faces(incarnation, face_id BLOB 16, image_id BLOB 16, external_image_id, user_id NULL,
          vector BLOB: box 4xf32, confidence f32, embedding dims x f32 (the pack's, 128 for 1.0))
                                                            PK (incarnation, face_id)
    users(incarnation, user_id, status, face_count, created) PK (incarnation, user_id)
    requests(incarnation, operation, token, request_digest, response, expires)
                                                            PK (incarnation, operation, token)
    purges(incarnation PK, collection_id, retired)          DeleteCollection tombstones

``users`` holds each user's FaceCount (its faces carry its ``user_id``, found through the partial
index ``faces_by_user``); ``requests`` holds the ClientRequestToken records of the user writes,
written in the same transaction as the write they remember.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

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
    id_bytes,
    id_text,
)
from rekface.stores.users import UserPlan, UserSnapshot, result_from_json, result_json

DB_FILE = "rekface.db"
# PRAGMA user_version of the file: bump it with every change to _SCHEMA or to what a blob holds.
SCHEMA_VERSION = 1


class StoreSchemaError(RuntimeError):
    """The data file was written by a rekface with another schema."""


PURGE_BATCH = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY,
    incarnation TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    face_model_version TEXT NOT NULL,
    face_count INTEGER NOT NULL DEFAULT 0,
    user_count INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tags (
    incarnation TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (incarnation, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS faces (
    incarnation TEXT NOT NULL,
    face_id BLOB NOT NULL,
    image_id BLOB NOT NULL,
    external_image_id TEXT,
    user_id TEXT,
    vector BLOB NOT NULL,
    PRIMARY KEY (incarnation, face_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS faces_by_user ON faces (incarnation, user_id, face_id)
    WHERE user_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
    incarnation TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    face_count INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    PRIMARY KEY (incarnation, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    incarnation TEXT NOT NULL,
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    response TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (incarnation, operation, token)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS purges (
    incarnation TEXT PRIMARY KEY,
    collection_id TEXT NOT NULL,
    retired REAL NOT NULL
);
"""

# Tables whose rows belong to one incarnation, in purge order.
_INCARNATION_TABLES = ("faces", "users", "requests", "tags")
_PURGE_KEYS = {
    "faces": "face_id",
    "users": "user_id",
    "requests": "operation || '/' || token",
    "tags": "key",
}
# Version 1's tables and their columns, in order.
_LAYOUT = {
    "collections": [
        "collection_id", "incarnation", "created", "face_model_version", "face_count",
        "user_count", "version",
    ],
    "tags": ["incarnation", "key", "value"],
    "faces": ["incarnation", "face_id", "image_id", "external_image_id", "user_id", "vector"],
    "users": ["incarnation", "user_id", "status", "face_count", "created"],
    "requests": [
        "incarnation", "operation", "token", "request_digest", "response", "expires",
    ],
    "purges": ["incarnation", "collection_id", "retired"],
}  # fmt: skip
_FACE_COLUMNS = "face_id, image_id, external_image_id, user_id, vector"


@functools.cache
def vector_dtype(dims: int) -> np.dtype:
    """The ``vector`` blob of a face whose embedding has ``dims`` values (the collection's
    recognizer pack's: 128 for the built-in 1.0, so files written before packs read unchanged)."""
    return np.dtype([("box", "<f4", (4,)), ("confidence", "<f4"), ("embedding", "<f4", (dims,))])


_VECTOR_HEAD = 20  # box + confidence bytes before the embedding


def _blob_dtype(blob: bytes) -> np.dtype:
    return vector_dtype((len(blob) - _VECTOR_HEAD) // 4)


def _vector(face: FaceRecord) -> bytes:
    assert face.embedding is not None
    value = np.zeros((), vector_dtype(len(face.embedding)))
    value["box"] = face.box
    value["confidence"] = face.confidence
    value["embedding"] = face.embedding
    return value.tobytes()


class SqliteStore(Store):
    def __init__(self, path: Path, token_secret: str) -> None:
        super().__init__(token_secret)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        self._create_or_check_schema(conn)

    def _create_or_check_schema(self, conn: sqlite3.Connection) -> None:
        """A new file gets the schema and its version; an existing one must carry this version,
        else the server would start and then fail each request on a missing column (an HTTP
        500 for the client). Under BEGIN IMMEDIATE so that two processes opening a new file
        do not both create it."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            layout = {
                name: [c[1] for c in conn.execute(f"PRAGMA table_info({name})")]
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if version == 0 and (not layout or layout == _LAYOUT):
                # A new file, or one of version 1 written before files carried their version.
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)  # (executescript would commit first)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"{self.path} holds rekface data of schema version {version}; this rekface "
                    f"reads version {SCHEMA_VERSION}. Start it with another --data-dir (the "
                    "collections of that file are not read or changed)."
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @classmethod
    def in_dir(cls, data_dir: Path, token_secret: str) -> SqliteStore:
        return cls(Path(data_dir) / DB_FILE, token_secret)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE for writes).
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for several SELECTs."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # -----------------------------------------------------------------------------------------
    # Collections

    def _insert_collection(self, record: CollectionRecord, tags: dict[str, str]) -> bool:
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO collections VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.collection_id,
                        record.incarnation,
                        record.created,
                        record.face_model_version,
                        record.face_count,
                        record.user_count,
                        record.version,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            conn.executemany(
                "INSERT INTO tags VALUES (?, ?, ?)",
                [(record.incarnation, k, v) for k, v in tags.items()],
            )
        return True

    @staticmethod
    def _collection(row: tuple | None) -> CollectionRecord | None:
        if row is None:
            return None
        return CollectionRecord(*row)

    def _read_collection(self, collection_id: str) -> CollectionRecord | None:
        row = (
            self._conn()
            .execute(
                "SELECT collection_id, incarnation, created, face_model_version, face_count, "
                "user_count, version FROM collections WHERE collection_id = ?",
                (collection_id,),
            )
            .fetchone()
        )
        return self._collection(row)

    def _current(self, conn: sqlite3.Connection, collection: CollectionRecord) -> CollectionRecord:
        row = conn.execute(
            "SELECT collection_id, incarnation, created, face_model_version, face_count, "
            "user_count, version FROM collections WHERE incarnation = ?",
            (collection.incarnation,),
        ).fetchone()
        if row is None:
            raise CollectionGone()
        return CollectionRecord(*row)

    def _scan_collections(self, after: str | None, limit: int) -> list[CollectionListing]:
        rows = (
            self._conn()
            .execute(
                "SELECT collection_id, face_model_version FROM collections "
                "WHERE collection_id > ? ORDER BY collection_id LIMIT ?",
                (after or "", limit),
            )
            .fetchall()
        )
        return [CollectionListing(*r) for r in rows]

    def _retire_collection(self, record: CollectionRecord) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM collections WHERE collection_id = ? AND incarnation = ?",
                (record.collection_id, record.incarnation),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO purges VALUES (?, ?, ?)",
                (record.incarnation, record.collection_id, time.time()),
            )
        return True

    def _purge_batch(self, incarnation: str) -> bool:
        for table in _INCARNATION_TABLES:
            key = _PURGE_KEYS[table]
            with self._write() as conn:
                cur = conn.execute(
                    f"DELETE FROM {table} WHERE incarnation = ? AND {key} IN "
                    f"(SELECT {key} FROM {table} WHERE incarnation = ? LIMIT ?)",
                    (incarnation, incarnation, PURGE_BATCH),
                )
            if cur.rowcount:
                return True
        return False

    def _drop_tombstone(self, incarnation: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM purges WHERE incarnation = ?", (incarnation,))

    def _tombstones(self) -> Iterable[str]:
        return [r[0] for r in self._conn().execute("SELECT incarnation FROM purges").fetchall()]

    # -----------------------------------------------------------------------------------------
    # Faces

    @staticmethod
    def _face(row: tuple, embeddings: bool = False) -> FaceRecord:
        face_id, image_id, external, user_id, vector = row
        value = np.frombuffer(vector, _blob_dtype(vector))[0]
        w, h, left, top = (float(v) for v in value["box"])
        return FaceRecord(
            face_id=id_text(face_id),
            image_id=id_text(image_id),
            external_image_id=external,
            box=(w, h, left, top),
            confidence=float(value["confidence"]),
            user_id=user_id,
            embedding=value["embedding"].copy() if embeddings else None,
        )

    def _insert_faces(
        self, collection: CollectionRecord, faces: list[FaceRecord]
    ) -> AddFacesResult:
        with self._write() as conn:
            current = self._current(conn, collection)
            added = self._insert_face_rows(conn, collection.incarnation, faces)
            if not added:
                return AddFacesResult(current, [], [])
            if current.face_count + len(added) > self.max_faces_per_collection:
                raise QuotaExceeded()
            after = self._bump(conn, current, faces=len(added))
        return AddFacesResult(after, added, [after.version])

    def _insert_face_rows(
        self, conn: sqlite3.Connection, incarnation: str, faces: list[FaceRecord]
    ) -> list[FaceRecord]:
        added = []
        for f in faces:
            cur = conn.execute(
                "INSERT OR IGNORE INTO faces VALUES (?, ?, ?, ?, ?, ?)",
                (
                    incarnation,
                    id_bytes(f.face_id),
                    id_bytes(f.image_id),
                    f.external_image_id,
                    f.user_id,
                    _vector(f),
                ),
            )
            if cur.rowcount:
                added.append(f)
        return added

    def _bump(
        self, conn: sqlite3.Connection, current: CollectionRecord, faces: int
    ) -> CollectionRecord:
        conn.execute(
            "UPDATE collections SET face_count = face_count + ?, version = version + 1 "
            "WHERE incarnation = ?",
            (faces, current.incarnation),
        )
        return self._current(conn, current)

    def _read_faces(
        self, collection: CollectionRecord, face_ids: list[str], embeddings: bool
    ) -> list[FaceRecord]:
        return self._face_rows(self._conn(), collection.incarnation, face_ids, embeddings)

    def _scan_faces(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[FaceRecord]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE incarnation = ? AND face_id > ? "
                "ORDER BY face_id LIMIT ?",
                (collection.incarnation, _after(after), limit),
            )
            .fetchall()
        )
        return [self._face(r) for r in rows]

    def _scan_user_faces(
        self, collection: CollectionRecord, user_id: str, after: str | None, limit: int
    ) -> list[FaceRecord]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE incarnation = ? AND user_id = ? "
                "AND face_id > ? ORDER BY face_id LIMIT ?",
                (collection.incarnation, user_id, _after(after), limit),
            )
            .fetchall()
        )
        return [self._face(r) for r in rows]

    def _remove_faces(
        self, collection: CollectionRecord, face_ids: list[str]
    ) -> tuple[list[str], list[int], CollectionRecord]:
        with self._write() as conn:
            current = self._current(conn, collection)
            removed = []
            for face_id in face_ids:
                cur = conn.execute(
                    "DELETE FROM faces WHERE incarnation = ? AND face_id = ? AND user_id IS NULL",
                    (collection.incarnation, id_bytes(face_id)),
                )
                if cur.rowcount:
                    removed.append(face_id)
            if not removed:
                return [], [], current
            after = self._bump(conn, current, faces=-len(removed))
        return removed, [after.version], after

    def _load_face_table(
        self, collection: CollectionRecord
    ) -> tuple[FaceTable, CollectionRecord] | None:
        with self._read() as conn:
            try:
                current = self._current(conn, collection)
            except CollectionGone:
                return None
            rows = conn.execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE incarnation = ?",
                (collection.incarnation,),
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
        with self._write() as conn:  # one writer at a time: the snapshot cannot change under us
            current = self._current(conn, collection)
            if token is not None:
                replayed = self._replay(conn, inc, token)
                if replayed is not None:
                    return replayed
            user = self._user_row(conn, inc, user_id)
            members = [
                id_text(r[0])
                for r in conn.execute(
                    "SELECT face_id FROM faces WHERE incarnation = ? AND user_id = ? "
                    "ORDER BY face_id",
                    (inc, user_id),
                )
            ]
            wanted = face_ids + members
            faces = {f.face_id: f for f in self._face_rows(conn, inc, wanted, embeddings)}
            p = plan(UserSnapshot(current, user, members, faces))
            conn.executemany(
                "UPDATE faces SET user_id = ? WHERE incarnation = ? AND face_id = ?",
                [(u, inc, id_bytes(f)) for f, u in p.assign.items()],
            )
            after_user = p.user_after
            if after_user is None:
                conn.execute(
                    "DELETE FROM users WHERE incarnation = ? AND user_id = ?", (inc, user_id)
                )
            elif p.created:
                conn.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                    (inc, user_id, after_user.status, after_user.face_count, time.time()),
                )
            else:
                conn.execute(
                    "UPDATE users SET status = ?, face_count = ? "
                    "WHERE incarnation = ? AND user_id = ?",
                    (after_user.status, after_user.face_count, inc, user_id),
                )
            conn.execute(
                "UPDATE collections SET user_count = user_count + ?, version = version + ? "
                "WHERE incarnation = ?",
                (p.user_count_delta, 1 if p.assign else 0, inc),
            )
            after = self._current(conn, collection)
            result = p.result
            if p.assign:
                result = replace(result, change=UsersChange(after, dict(p.assign), [after.version]))
            if token is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        inc,
                        token.operation,
                        token.token,
                        token.digest,
                        result_json(result),
                        time.time() + self.request_token_ttl,
                    ),
                )
        return result

    @staticmethod
    def _replay(conn: sqlite3.Connection, inc: str, token: RequestToken) -> UserWrite | None:
        row = conn.execute(
            "SELECT request_digest, response FROM requests WHERE incarnation = ? "
            "AND operation = ? AND token = ? AND expires > ?",
            (inc, token.operation, token.token, time.time()),
        ).fetchone()
        if row is None:
            return None
        if row[0] != token.digest:
            raise TokenMismatch()
        return result_from_json(row[1])

    @staticmethod
    def _user_row(conn: sqlite3.Connection, inc: str, user_id: str) -> UserRecord | None:
        row = conn.execute(
            "SELECT user_id, status, face_count FROM users WHERE incarnation = ? AND user_id = ?",
            (inc, user_id),
        ).fetchone()
        return None if row is None else UserRecord(*row)

    def _face_rows(
        self, conn: sqlite3.Connection, inc: str, face_ids: list[str], embeddings: bool
    ) -> list[FaceRecord]:
        rows = _select_in(
            conn,
            f"SELECT {_FACE_COLUMNS} FROM faces WHERE incarnation = ? AND face_id IN ({{}})",
            inc,
            [id_bytes(f) for f in dict.fromkeys(face_ids)],
        )
        return [self._face(r, embeddings) for r in rows]

    def _read_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None:
        with self._read() as conn:
            self._current(conn, collection)
            return self._user_row(conn, collection.incarnation, user_id)

    def _read_users(self, collection: CollectionRecord, user_ids: list[str]) -> list[UserRecord]:
        with self._read() as conn:
            self._current(conn, collection)
            rows = _select_in(
                conn,
                "SELECT user_id, status, face_count FROM users WHERE incarnation = ? "
                "AND user_id IN ({})",
                collection.incarnation,
                user_ids,
            )
        return [UserRecord(*row) for row in rows]

    def _scan_users(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[UserRecord]:
        with self._read() as conn:
            self._current(conn, collection)
            rows = conn.execute(
                "SELECT user_id, status, face_count FROM users WHERE incarnation = ? "
                "AND user_id > ? ORDER BY user_id LIMIT ?",
                (collection.incarnation, after or "", limit),
            ).fetchall()
        return [UserRecord(*r) for r in rows]

    # -----------------------------------------------------------------------------------------
    # Tags

    def _update_tags(
        self, record: CollectionRecord, put: dict[str, str], remove: list[str], max_tags: int
    ) -> None:
        with self._write() as conn:
            self._current(conn, record)
            conn.executemany(
                "INSERT OR REPLACE INTO tags VALUES (?, ?, ?)",
                [(record.incarnation, k, v) for k, v in put.items()],
            )
            conn.executemany(
                "DELETE FROM tags WHERE incarnation = ? AND key = ?",
                [(record.incarnation, k) for k in remove],
            )
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM tags WHERE incarnation = ?", (record.incarnation,)
            ).fetchone()
            if count > max_tags:
                raise TooManyTags()  # rolls the transaction back

    def _read_tags(self, record: CollectionRecord) -> dict[str, str] | None:
        with self._read() as conn:
            try:
                self._current(conn, record)
            except CollectionGone:
                return None
            rows = conn.execute(
                "SELECT key, value FROM tags WHERE incarnation = ?", (record.incarnation,)
            ).fetchall()
        return dict(rows)


def _select_in(conn: sqlite3.Connection, sql: str, inc: str, keys: list) -> list[tuple]:
    """The rows of ``sql`` (an incarnation parameter, then ``IN ({})``) for every key, asked
    500 keys at a time: under SQLite's bound-parameter limit."""
    rows: list[tuple] = []
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        rows += conn.execute(sql.format(",".join("?" * len(chunk))), (inc, *chunk)).fetchall()
    return rows


def _after(face_id: str | None) -> bytes:
    return b"" if face_id is None else id_bytes(face_id)  # b"" sorts before every id


def _table(rows: list[tuple]) -> FaceTable:
    """Rows (face_id, image_id, external_image_id, user_id, vector) -> columns."""
    n = len(rows)
    if n == 0:
        return FaceTable.empty()
    face_ids, image_ids, externals, users, vectors = zip(*rows, strict=True)
    values = np.frombuffer(b"".join(vectors), _blob_dtype(vectors[0]))
    return FaceTable(
        face_ids=np.frombuffer(b"".join(face_ids), ID_DTYPE).copy(),
        image_ids=np.frombuffer(b"".join(image_ids), ID_DTYPE).copy(),
        external_ids=np.array(externals, object),
        user_ids=np.array(users, object),
        boxes=np.ascontiguousarray(values["box"]),
        confidences=np.ascontiguousarray(values["confidence"]),
        embeddings=np.ascontiguousarray(values["embedding"]),
    )
