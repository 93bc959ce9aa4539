"""PostgreSQL + pgvector as the search engine (Aurora PostgreSQL Serverless v2 over a direct
connection, or any PostgreSQL >= 13 with pgvector >= 0.8 on a bigger machine).

Layout (``pg_schema`` owns the migrations): one table ``rekface_vectors`` (incarnation, FaceId,
embedding vector(128), UserId) partitioned by LIST on the incarnation, one partition per
collection (a collection of a recognizer pack of another width has its partition in a parent of
that width, ``rekface_vectors_d<dims>``), and an HNSW index (cosine) declared on the parent, so
each collection has its own graph: the filter "this collection" is partition pruning, not a filter
on a shared graph. (On one
graph over all collections, pgvector returns ef_search candidates and *then* filters: a filtered
top-10 came back with about 6 rows in our trial; iterative scans fix that only partly, and a small
collection next to a 20-million-face one would be scanned for tuples that never match.)

Queries:
- A collection below ``exact_below`` faces (the record's FaceCount) is searched exactly (a
  sequential scan of its partition: faster than the graph at that size, and exact).
- Above, the HNSW graph with ``hnsw.ef_search`` = max(``ef_search``, k) (REKFACE_PG_EF_SEARCH,
  200 by default) and
  ``hnsw.iterative_scan = relaxed_order`` (so that a filter, e.g. faces of users, still yields k
  rows), nearest first; the threshold is applied outside the scan (a materialized CTE), as
  pgvector recommends for distance filters, so the graph walk stops at k.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rekface.search import pg_schema
from rekface.search.indexed import Candidates, IndexedSearch, Vector
from rekface.settings import DEFAULT_PG_EF_SEARCH
from rekface.stores.base import Store
from rekface.stores.records import CollectionRecord

DEFAULT_EXACT_BELOW = 20_000
MAX_TOP_K = 10_000
_POOL_SIZE = 8


def nearest_sql(table: str, key: str, column: str, exact: bool) -> str:
    """The k nearest rows of a partition within a distance (parameters ``query``, ``k``,
    ``max_distance``), nearest first. The partition itself, not the parent with "incarnation =
    ...": with no filter left, the only plans are its HNSW graph and a scan of every row.

    - exact: every distance (a materialized CTE without ORDER BY, which the graph cannot
      serve), then the threshold, then the top k;
    - graph: the graph's k nearest, then the threshold outside the walk (pgvector's advice for
      distance filters: a filter inside would make the walk go on past k).
    The two texts differ, which also keeps psycopg's prepared plans apart."""
    if exact:
        return (
            f"WITH scored AS MATERIALIZED (SELECT {key}, {column} <=> %(query)s AS d "
            f"FROM {table}) SELECT {key}, d FROM scored WHERE d <= %(max_distance)s "
            f"ORDER BY d LIMIT %(k)s"
        )
    return (
        f"WITH nearest AS MATERIALIZED (SELECT {key}, {column} <=> %(query)s AS d "
        f"FROM {table} ORDER BY d LIMIT %(k)s) "
        f"SELECT {key}, d FROM nearest WHERE d <= %(max_distance)s ORDER BY d"
    )


class ConnectionPool:
    """A few psycopg connections (autocommit; transactions where needed), one per thread at a
    time. Connections are opened on demand and checked before reuse."""

    def __init__(self, dsn: str, size: int = _POOL_SIZE) -> None:
        self.dsn = dsn
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        # Each connection's session settings (configure); forgotten with the connection.
        self._sessions: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()

    def _open(self) -> Any:
        import psycopg
        from pgvector.psycopg import register_vector

        conn = psycopg.connect(self.dsn, autocommit=True)
        with self._schema_lock:
            if not self._schema_ready:
                pg_schema.migrate(conn)
                self._schema_ready = True
        register_vector(conn)
        return conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        self._slots.acquire()
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
                if conn.closed or conn.broken:
                    conn = self._open()
            except queue.Empty:
                conn = self._open()
            yield conn
            self._idle.put(conn)
            conn = None
        finally:
            if conn is not None:  # failed midway: do not reuse it
                with contextlib.suppress(Exception):  # closing a broken connection
                    conn.close()
            self._slots.release()

    def configure(self, conn: Any, settings: dict[str, str]) -> None:
        """Session settings for the next query, sent (in one statement) only where they differ
        from what the connection has, so that a search is one round trip to the database where
        BEGIN, three SET LOCAL, the query and COMMIT made six (each a wake-up of the server
        process and of this one; across a network, a network round trip too). The settings
        stay on the connection: the pool's other statements (primary-key reads, writes, DDL)
        plan the same with them, and the two searches set each one they rely on."""
        current = self._sessions.setdefault(conn, {})
        changed = {name: value for name, value in settings.items() if current.get(name) != value}
        if changed:
            calls = ", ".join("set_config(%s, %s, false)" for _ in changed)
            conn.execute(f"SELECT {calls}", [x for item in changed.items() for x in item])
            current.update(changed)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class PgVectorSearch(IndexedSearch):
    max_top_k = MAX_TOP_K

    def __init__(
        self,
        store: Store,
        dsn: str,
        ef_search: int = DEFAULT_PG_EF_SEARCH,
        exact_below: int = DEFAULT_EXACT_BELOW,
        pool: ConnectionPool | None = None,
    ) -> None:
        super().__init__(store)
        self.pool = pool or ConnectionPool(dsn)
        self.ef_search = ef_search
        self.exact_below = exact_below
        self._partitions: set[str] = set()

    # -----------------------------------------------------------------------------------------

    def _ensure_partition(self, conn: Any, incarnation: str, dims: int) -> None:
        if incarnation in self._partitions:
            return
        pg_schema.ensure_partition(conn, incarnation, dims)
        self._partitions.add(incarnation)

    def _put(self, collection: CollectionRecord, vectors: list[Vector]) -> None:
        if not vectors:
            return
        inc = uuid.UUID(collection.incarnation)
        rows = [(inc, uuid.UUID(v.face_id), v.embedding, v.user_id) for v in vectors]
        dims = len(vectors[0].embedding)
        parent = pg_schema.parents(dims)[0]
        self._write(collection, lambda conn: self._upsert(conn, parent, rows), dims)

    def _write(self, collection: CollectionRecord, write: Callable[[Any], None], dims: int) -> None:
        """``write(conn)`` into the collection's partitions, created first if this process has
        not seen them. One dropped since this process created it (DeleteCollection elsewhere) is
        created again and the write repeated, rather than failing a request whose store write
        may already have committed; `rekface vectors gc` drops such partitions."""
        with self.pool.connection() as conn:
            self._ensure_partition(conn, collection.incarnation, dims)
            try:
                write(conn)
            except pg_schema.UndefinedPartition:
                self._partitions.discard(collection.incarnation)
                self._ensure_partition(conn, collection.incarnation, dims)
                write(conn)

    def _upsert(self, conn: Any, parent: str, rows: list[tuple]) -> None:
        with pg_schema.translated_errors(), conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {parent} (incarnation, face_id, embedding, user_id) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (incarnation, face_id) DO UPDATE SET "
                "embedding = EXCLUDED.embedding, user_id = EXCLUDED.user_id, written_at = now()",
                rows,
            )

    def _in_partition(self, sql: str, table: str, params: tuple) -> list[tuple]:
        """``sql`` (``{table}`` in it) on one collection's partition: the partition itself, not
        its parent, whose name depends on the collection's width. No partition (nothing ever
        written, or dropped): no rows."""
        import psycopg.errors

        with self.pool.connection() as conn:
            try:
                cur = conn.execute(sql.format(table=table), params)
            except psycopg.errors.UndefinedTable:
                return []
            return cur.fetchall() if cur.description else []

    def _present(self, collection: CollectionRecord, face_ids: list[str]) -> set[str]:
        rows = self._in_partition(
            "SELECT face_id FROM {table} WHERE face_id = ANY(%s)",
            pg_schema.partition_name(collection.incarnation),
            ([uuid.UUID(f) for f in face_ids],),
        )
        return {str(r[0]) for r in rows}

    def _delete(self, collection: CollectionRecord, face_ids: list[str]) -> None:
        self._in_partition(
            "DELETE FROM {table} WHERE face_id = ANY(%s)",
            pg_schema.partition_name(collection.incarnation),
            ([uuid.UUID(f) for f in face_ids],),
        )

    def _query(
        self, collection: CollectionRecord, query: np.ndarray, k: int, min_cosine: float
    ) -> Candidates:
        table = pg_schema.partition_name(collection.incarnation)
        exact = collection.face_count < self.exact_below
        return self._nearest(table, "face_id", "embedding", exact, query, k, min_cosine)

    def _query_users(
        self, collection: CollectionRecord, query: np.ndarray, k: int, min_cosine: float
    ) -> Candidates:
        table = pg_schema.users_partition_name(collection.incarnation)
        exact = collection.user_count < self.exact_below
        return self._nearest(table, "user_id", "centroid", exact, query, k, min_cosine)

    def _nearest(
        self,
        table: str,
        key: str,
        column: str,
        exact: bool,
        query: np.ndarray,
        k: int,
        min_cosine: float,
    ) -> Candidates:
        import psycopg.errors

        with self.pool.connection() as conn:
            self.pool.configure(conn, self._settings(exact, k))
            try:
                rows = conn.execute(
                    nearest_sql(table, key, column, exact),
                    {"query": query, "k": k, "max_distance": 1.0 - min_cosine},
                ).fetchall()
            except psycopg.errors.UndefinedTable:  # nothing was ever written
                return Candidates([], [], True)
        # Fewer than k rows within the threshold: none further is within it either.
        return Candidates(
            [str(r[0]) for r in rows], [1.0 - float(r[1]) for r in rows], len(rows) < k
        )

    def _settings(self, exact: bool, k: int) -> dict[str, str]:
        if exact:  # sequential scans on, else the planner would read in primary-key order
            return {"enable_seqscan": "on"}
        return {
            "enable_seqscan": "off",  # else the planner may choose to sort a large k itself
            "hnsw.ef_search": str(max(self.ef_search, min(k, 1000))),  # pgvector's maximum
            "hnsw.iterative_scan": "relaxed_order",
        }

    def _face_users(self, collection: CollectionRecord, face_ids: list[str]) -> dict[str, str]:
        rows = self._in_partition(
            "SELECT face_id, user_id FROM {table} WHERE face_id = ANY(%s) AND user_id IS NOT NULL",
            pg_schema.partition_name(collection.incarnation),
            ([uuid.UUID(f) for f in face_ids],),
        )
        return {str(r[0]): r[1] for r in rows}

    def _put_users(
        self, collection: CollectionRecord, users: list[tuple[str, np.ndarray, int]]
    ) -> None:
        if not users:
            return
        inc = uuid.UUID(collection.incarnation)
        rows = [(inc, u, np.asarray(v, np.float32), n) for u, v, n in users]
        dims = len(rows[0][2])
        parent = pg_schema.parents(dims)[1]

        def upsert(conn: Any) -> None:
            with pg_schema.translated_errors(), conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {parent} (incarnation, user_id, centroid, face_count)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (incarnation, user_id) DO UPDATE SET "
                    "centroid = EXCLUDED.centroid, face_count = EXCLUDED.face_count",
                    rows,
                )

        self._write(collection, upsert, dims)

    def _delete_users(self, collection: CollectionRecord, user_ids: list[str]) -> None:
        self._in_partition(
            "DELETE FROM {table} WHERE user_id = ANY(%s)",
            pg_schema.users_partition_name(collection.incarnation),
            (user_ids,),
        )

    def _user_vectors(
        self, collection: CollectionRecord, user_ids: list[str]
    ) -> dict[str, tuple[np.ndarray, int]]:
        if not user_ids:
            return {}
        rows = self._in_partition(
            "SELECT user_id, centroid, face_count FROM {table} WHERE user_id = ANY(%s)",
            pg_schema.users_partition_name(collection.incarnation),
            (user_ids,),
        )
        return {r[0]: (r[1].to_numpy().astype(np.float32), int(r[2])) for r in rows}

    def rebuild_graphs(
        self,
        collection: CollectionRecord,
        m: int,
        ef_construction: int,
        maintenance_work_mem: str | None = None,
    ) -> list[pg_schema.GraphOptions]:
        """Rebuild the collection's HNSW graphs (faces, users' centroids) with other build
        parameters, while searches and writes go on; returns the graphs' options, now.
        ``maintenance_work_mem`` (e.g. "8GB"), for this rebuild only: pgvector builds fast
        while the graph fits in it (~0.8 GiB per million faces at m 16) and far slower after."""
        with self.pool.connection() as conn:
            if maintenance_work_mem:
                conn.execute(
                    "SELECT set_config('maintenance_work_mem', %s, false)", (maintenance_work_mem,)
                )
            try:
                return [
                    pg_schema.rebuild_graph(conn, table, m, ef_construction)
                    for table in (
                        pg_schema.partition_name(collection.incarnation),
                        pg_schema.users_partition_name(collection.incarnation),
                    )
                    if pg_schema.exists(conn, table)
                ]
            finally:
                conn.execute("RESET maintenance_work_mem")  # the connection goes back to the pool

    def _drop(self, incarnation: str) -> None:
        self._partitions.discard(incarnation)
        with self.pool.connection() as conn:
            pg_schema.drop_partition(conn, incarnation)

    def _incarnations(self) -> list[str]:
        with self.pool.connection() as conn:
            return pg_schema.partitions(conn)
