"""rekface's own schema in PostgreSQL: numbered migrations, applied once, in order, under an
advisory lock (many processes may start at once), recorded in ``rekface_schema``.

One database serves both the store (``stores.postgres``: collections, faces, users, tags,
request tokens) and the pgvector search backend (``search.pgvector``: vectors and HNSW graphs).
Each migration belongs to one of those parts, and each user applies the parts it needs: the store
alone runs on a PostgreSQL without the pgvector extension (a plain RDS or Debian server), and
adding pgvector search later applies the vectors' migrations to the same database.

A new version of rekface adds a migration at the end of ``MIGRATIONS``; it never edits one that
shipped. Partitions (one per collection incarnation) are created and dropped at run time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_LOCK_ID = 0x7265_6B66  # "rekf": the advisory lock that serialises migrations
PARTITION_PREFIX = "rekface_vectors_"
USERS_PREFIX = "rekface_users_"

# HNSW build parameters: m 16 (pgvector's default), ef_construction 128 (twice the default:
# better same-person recall at the same ef_search, benchmarks/pgvector_scale.py).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
# pgvector's limits on the build parameters (and ef_construction >= 2 m).
HNSW_M_RANGE = (2, 100)
HNSW_EF_CONSTRUCTION_RANGE = (4, 1000)

VECTORS = "vectors"  # the pgvector search backend's tables (needs the vector extension)
STORE = "store"  # the PostgreSQL store's tables (plain PostgreSQL)


@dataclass(frozen=True)
class Migration:
    part: str  # VECTORS or STORE
    sql: str


MIGRATIONS: list[Migration] = [
    # 1: the vectors, one partition per collection incarnation, an HNSW graph per partition.
    Migration(
        VECTORS,
        f"""
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE rekface_vectors (
        incarnation uuid NOT NULL,
        face_id uuid NOT NULL,
        embedding vector(128) NOT NULL,
        user_id text,
        written_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (incarnation, face_id)
    ) PARTITION BY LIST (incarnation);
    CREATE INDEX rekface_vectors_hnsw ON rekface_vectors
        USING hnsw (embedding vector_cosine_ops)
        WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION});
    """,
    ),
    # 2: users' centroids (SearchUsers), partitioned and indexed the same way.
    Migration(
        VECTORS,
        f"""
    CREATE TABLE rekface_user_vectors (
        incarnation uuid NOT NULL,
        user_id text NOT NULL,
        centroid vector(128) NOT NULL,
        face_count int NOT NULL,
        PRIMARY KEY (incarnation, user_id)
    ) PARTITION BY LIST (incarnation);
    CREATE INDEX rekface_user_vectors_hnsw ON rekface_user_vectors
        USING hnsw (centroid vector_cosine_ops)
        WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION});
    """,
    ),
    # 3: the store (stores.postgres). Every item of a collection is keyed by its incarnation.
    # Ids and keys that pages are ordered by are COLLATE "C" (byte order, as Python compares
    # str), so that "after this id" in a pagination token means the same as ORDER BY. A face's
    # ``vector`` is box 4 x f32, confidence f32, embedding D x f32 (little-endian): D is the
    # collection's recognizer's (FaceModelVersion), not fixed by the schema.
    Migration(
        STORE,
        """
    CREATE TABLE rekface_collections (
        collection_id text COLLATE "C" PRIMARY KEY,
        incarnation uuid NOT NULL UNIQUE,
        created double precision NOT NULL,
        face_model_version text NOT NULL,
        face_count bigint NOT NULL DEFAULT 0,
        user_count bigint NOT NULL DEFAULT 0,
        version bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE rekface_tags (
        incarnation uuid NOT NULL,
        key text COLLATE "C" NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (incarnation, key)
    );
    CREATE TABLE rekface_faces (
        incarnation uuid NOT NULL,
        face_id uuid NOT NULL,
        image_id uuid NOT NULL,
        external_image_id text,
        user_id text COLLATE "C",
        vector bytea NOT NULL CHECK (length(vector) % 4 = 0 AND length(vector) > 20),
        PRIMARY KEY (incarnation, face_id)
    );
    CREATE INDEX rekface_faces_by_user ON rekface_faces (incarnation, user_id, face_id)
        WHERE user_id IS NOT NULL;
    CREATE TABLE rekface_users (
        incarnation uuid NOT NULL,
        user_id text COLLATE "C" NOT NULL,
        status text NOT NULL,
        face_count int NOT NULL DEFAULT 0,
        created double precision NOT NULL,
        PRIMARY KEY (incarnation, user_id)
    );
    CREATE TABLE rekface_requests (
        incarnation uuid NOT NULL,
        operation text NOT NULL,
        token text NOT NULL,
        request_digest text NOT NULL,
        response text NOT NULL,
        expires double precision NOT NULL,
        PRIMARY KEY (incarnation, operation, token)
    );
    CREATE TABLE rekface_purges (
        incarnation uuid PRIMARY KEY,
        collection_id text NOT NULL,
        retired double precision NOT NULL
    );
    CREATE TABLE rekface_secrets (
        name text PRIMARY KEY,
        value text NOT NULL
    );
    """,
    ),
]


class UndefinedPartition(Exception):
    """A write found no partition for its collection incarnation (dropped meanwhile)."""


@contextmanager
def translated_errors() -> Iterator[None]:
    import psycopg.errors

    try:
        yield
    except psycopg.errors.CheckViolation as exc:  # "no partition of relation ... found for row"
        if "no partition" in str(exc):
            raise UndefinedPartition(str(exc)) from None
        raise


def applied(conn: Any) -> set[int]:
    """The numbers of the migrations this database has run."""
    exists = conn.execute("SELECT to_regclass('rekface_schema')").fetchone()[0]
    if exists is None:
        return set()
    return {r[0] for r in conn.execute("SELECT version FROM rekface_schema").fetchall()}


def pending(done: set[int], parts: tuple[str, ...]) -> list[int]:
    """The numbers of the migrations of ``parts`` not in ``done``, in order."""
    return [
        number
        for number, m in enumerate(MIGRATIONS, start=1)
        if m.part in parts and number not in done
    ]


def migrate(conn: Any, parts: tuple[str, ...] = (VECTORS,)) -> int:
    """Run the migrations of ``parts`` that this database has not run; returns how many ran.
    ``conn`` must be in autocommit (the migrations run in one transaction of their own)."""
    if not pending(applied(conn), parts):
        return 0
    ran = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS rekface_schema ("
            "version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for number in pending(applied(conn), parts):  # again, under the lock
            conn.execute(MIGRATIONS[number - 1].sql)
            conn.execute("INSERT INTO rekface_schema (version) VALUES (%s)", (number,))
            ran += 1
    return ran


def partition_name(incarnation: str) -> str:
    return PARTITION_PREFIX + uuid.UUID(incarnation).hex


def users_partition_name(incarnation: str) -> str:
    return USERS_PREFIX + uuid.UUID(incarnation).hex


# Embedding widths: the partitioned tables of migrations 1 and 2 hold the built-in recognizer
# pack's 128-d embeddings; a collection of another pack (FaceModelVersion) has its partitions in
# parents of its width, made like them on first use (a column's dimension is the parent's, and the
# HNSW graph needs a fixed one). Partitions keep their names whatever their parent.
BUILTIN_DIMS = 128
MAX_DIMS = 2000  # pgvector's limit for an HNSW index on vector


def parents(dims: int) -> tuple[str, str]:
    """The faces' and the users' parent tables of embeddings of ``dims`` values."""
    if dims == BUILTIN_DIMS:
        return "rekface_vectors", "rekface_user_vectors"
    return f"rekface_vectors_d{dims}", f"rekface_user_vectors_d{dims}"


def ensure_parents(conn: Any, dims: int) -> None:
    """The parent tables of another width, created once (under the migrations' lock)."""
    if dims == BUILTIN_DIMS:
        return
    if not 1 <= dims <= MAX_DIMS:
        raise ValueError(
            f"pgvector indexes embeddings of at most {MAX_DIMS} dimensions, not {dims}"
        )
    faces, users = parents(dims)
    if exists(conn, faces) and exists(conn, users):
        return
    graph = f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(
            f"""
    CREATE TABLE IF NOT EXISTS {faces} (
        incarnation uuid NOT NULL,
        face_id uuid NOT NULL,
        embedding vector({dims}) NOT NULL,
        user_id text,
        written_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (incarnation, face_id)
    ) PARTITION BY LIST (incarnation);
    CREATE INDEX IF NOT EXISTS {faces}_hnsw ON {faces}
        USING hnsw (embedding vector_cosine_ops) {graph};
    CREATE TABLE IF NOT EXISTS {users} (
        incarnation uuid NOT NULL,
        user_id text NOT NULL,
        centroid vector({dims}) NOT NULL,
        face_count int NOT NULL,
        PRIMARY KEY (incarnation, user_id)
    ) PARTITION BY LIST (incarnation);
    CREATE INDEX IF NOT EXISTS {users}_hnsw ON {users}
        USING hnsw (centroid vector_cosine_ops) {graph};
    """
        )


def ensure_partition(conn: Any, incarnation: str, dims: int = BUILTIN_DIMS) -> None:
    """The collection's partitions of the faces' and the users' tables (of its width)."""
    inc = uuid.UUID(incarnation)
    ensure_parents(conn, dims)
    faces, users = parents(dims)
    for parent, name in (
        (faces, partition_name(incarnation)),
        (users, users_partition_name(incarnation)),
    ):
        with conn.transaction():
            # Two writers of a new collection at once: one creates, the other waits, finds it.
            # IF NOT EXISTS as well: after waiting for the lock, to_regclass may still answer
            # from the catalog snapshot taken before the wait (seen: DuplicateTable in the
            # concurrent-indexing contract test), while CREATE looks the name up afresh.
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_ID, name))
            if not exists(conn, name):
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {parent} "
                    f"FOR VALUES IN ('{inc}')"
                )


def exists(conn: Any, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None


def check_graph_options(m: int, ef_construction: int) -> None:
    """ValueError, in pgvector's terms, for build parameters it would refuse."""
    (m_low, m_high), (ef_low, ef_high) = HNSW_M_RANGE, HNSW_EF_CONSTRUCTION_RANGE
    if not m_low <= m <= m_high:
        raise ValueError(f"m must be between {m_low} and {m_high}, got {m}")
    if not ef_low <= ef_construction <= ef_high:
        raise ValueError(
            f"ef_construction must be between {ef_low} and {ef_high}, got {ef_construction}"
        )
    if ef_construction < 2 * m:
        raise ValueError(f"ef_construction must be at least 2 m ({2 * m}), got {ef_construction}")


@dataclass(frozen=True)
class GraphOptions:
    index: str
    m: int
    ef_construction: int
    bytes: int


def graph_options(conn: Any, table: str) -> GraphOptions:
    """The HNSW index of a partition and the parameters it was built with (pgvector's defaults,
    16 and 64, when its options name none)."""
    row = conn.execute(
        "SELECT c.relname, c.reloptions, pg_relation_size(c.oid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
        "WHERE i.indrelid = %s::regclass AND a.amname = 'hnsw' AND i.indisvalid",
        (table,),
    ).fetchone()
    if row is None:  # dropped by hand: the parent's index declares one for every partition
        raise LookupError(f"{table} has no HNSW index")
    name, options, size = row
    given = dict(o.split("=", 1) for o in options or [])
    return GraphOptions(
        name, int(given.get("m", 16)), int(given.get("ef_construction", 64)), int(size)
    )


def rebuild_graph(conn: Any, table: str, m: int, ef_construction: int) -> GraphOptions:
    """Rebuild a partition's HNSW graph with new build parameters, without blocking searches or
    writes (REINDEX CONCURRENTLY builds a new graph beside the old one, then swaps them). The
    index stays attached to the parent's, whose definition new collections still get (HNSW_M).

    ``conn`` must be in autocommit (REINDEX CONCURRENTLY refuses a transaction). Interrupted,
    it leaves an invalid copy named ``<index>_ccnew``: dropped here first, so running it again
    is the way to finish."""
    check_graph_options(m, ef_construction)
    leftovers = conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisvalid",
        (table,),
    ).fetchall()
    for (name,) in leftovers:
        conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
    index = graph_options(conn, table).index
    conn.execute(f'ALTER INDEX "{index}" SET (m = {m}, ef_construction = {ef_construction})')
    conn.execute(f'REINDEX INDEX CONCURRENTLY "{index}"')
    return graph_options(conn, table)


def drop_partition(conn: Any, incarnation: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {users_partition_name(incarnation)}")
    conn.execute(f"DROP TABLE IF EXISTS {partition_name(incarnation)}")


def partitions(conn: Any) -> list[str]:
    """The incarnations that have faces' partitions, whatever their width."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = 'rekface_vectors' OR p.relname ~ '^rekface_vectors_d[0-9]+$'"
    ).fetchall()
    return [str(uuid.UUID(r[0][len(PARTITION_PREFIX) :])) for r in rows]
