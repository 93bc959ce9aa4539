"""What only the PostgreSQL store has (the shared contract is in test_store_contract.py and
test_user_contract.py): the token secret its replicas share, the migrations it shares with the
pgvector backend, retries of transactions a conflict rolled back, timeouts, start-up errors."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
import pytest
from store_helpers import image_faces

from rekface.adapters.bootstrap import build_store
from rekface.search import pg_schema
from rekface.settings import Settings
from rekface.stores.postgres import MAX_ATTEMPTS, PostgresStore


@pytest.fixture
def dsn(live_postgres) -> str:
    return live_postgres.new_database()


@pytest.fixture
def stores():
    opened: list[PostgresStore] = []

    def open_store(dsn: str, secret: str | None = None, **kwargs) -> PostgresStore:
        store = PostgresStore(dsn, secret, **kwargs)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def test_replicas_share_one_random_token_secret(dsn, live_postgres, stores):
    a, b = stores(dsn), stores(dsn)  # two processes, no REKFACE_TOKEN_SECRET
    assert a.shared_token_secret() == b.shared_token_secret()
    assert len(a.shared_token_secret()) == 64
    c = a.create_collection("c")
    for i in range(3):
        a.add_faces(c, image_faces(c, 1, np.random.default_rng(i), f"img{i}"))
    first = a.list_faces(c, max_results=2)
    rest = b.list_faces(c, max_results=2, next_token=first.next_token)  # verifies on b
    assert len(first.items) == 2 and len(rest.items) == 1
    # Another database, another secret: never a fixed default.
    assert stores(live_postgres.new_database()).shared_token_secret() != a.shared_token_secret()
    # An explicit secret (REKFACE_TOKEN_SECRET) wins and leaves the database's alone.
    explicit = stores(dsn, "explicit")
    assert explicit.tokens != a.tokens
    with pytest.raises(Exception, match="token"):
        explicit.list_faces(c, max_results=2, next_token=first.next_token)


def test_store_and_vectors_migrate_apart_into_one_database(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The store alone: no pgvector needed (its tables only).
        assert pg_schema.migrate(conn, parts=(pg_schema.STORE,)) == 1
        assert pg_schema.applied(conn) == {3}
        assert not pg_schema.exists(conn, "rekface_vectors")
        assert pg_schema.exists(conn, "rekface_faces")
        # The pgvector backend then adds its own to the same database; nothing runs twice.
        assert pg_schema.migrate(conn) == 2
        assert pg_schema.migrate(conn, parts=(pg_schema.STORE, pg_schema.VECTORS)) == 0
        assert pg_schema.applied(conn) == {1, 2, 3}


def test_processes_starting_at_once_migrate_once(dsn):
    errors: list[BaseException] = []
    ran: list[int] = []

    def start() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                ran.append(pg_schema.migrate(conn, parts=(pg_schema.STORE, pg_schema.VECTORS)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(ran) == [0, 0, 0, 3]


def _conflict_on(store: PostgresStore, monkeypatch, failures: int, error: type) -> list[int]:
    """Make the next ``failures`` transactions fail as PostgreSQL does on a conflict (after the
    work, before the commit: everything is rolled back)."""
    attempts: list[int] = []
    real = store._bump

    def bump(conn, current, faces):
        after = real(conn, current, faces)
        attempts.append(1)
        if len(attempts) <= failures:
            raise error("conflict injected by the test")
        return after

    monkeypatch.setattr(store, "_bump", bump)
    monkeypatch.setattr("rekface.stores.postgres.time.sleep", lambda s: None)
    return attempts


@pytest.mark.parametrize(
    "error", [psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected]
)
def test_a_transaction_rolled_back_by_a_conflict_is_run_again(dsn, stores, monkeypatch, error):
    store = stores(dsn, "s")
    c = store.create_collection("c")
    faces = image_faces(c, 3, np.random.default_rng(0))
    attempts = _conflict_on(store, monkeypatch, 2, error)
    result = store.add_faces(c, faces)
    assert len(attempts) == 3 and len(result.added) == 3
    after = store.get_collection("c")
    assert after.face_count == 3 and after.version == 1  # counted once, one version


def test_a_conflict_that_persists_is_raised_with_nothing_written(dsn, stores, monkeypatch):
    store = stores(dsn, "s")
    c = store.create_collection("c")
    faces = image_faces(c, 2, np.random.default_rng(0))
    attempts = _conflict_on(store, monkeypatch, MAX_ATTEMPTS, psycopg.errors.SerializationFailure)
    with pytest.raises(psycopg.errors.SerializationFailure):
        store.add_faces(c, faces)
    assert len(attempts) == MAX_ATTEMPTS
    monkeypatch.undo()
    assert store.get_collection("c").face_count == 0
    assert store.list_faces(c).items == []


def test_a_writer_stuck_behind_a_lock_times_out(dsn, stores):
    """A transaction holding the collection's row (a frozen client) makes other writers fail
    after the statement timeout, not wait for ever."""
    store = stores(dsn, "s", statement_timeout_ms=300)
    c = store.create_collection("c")
    with psycopg.connect(dsn) as holder:
        holder.execute(
            "SELECT 1 FROM rekface_collections WHERE collection_id = 'c' FOR UPDATE"
        ).fetchone()
        with pytest.raises(psycopg.errors.QueryCanceled):
            store.add_faces(c, image_faces(c, 1, np.random.default_rng(0)))
        holder.rollback()
    store.add_faces(c, image_faces(c, 1, np.random.default_rng(0)))
    assert store.get_collection("c").face_count == 1


def test_embeddings_of_any_width_round_trip(dsn, stores):
    store = stores(dsn, "s")
    rng = np.random.default_rng(0)
    for width in (128, 192, 512):
        c = store.create_collection(f"w{width}")
        faces = image_faces(c, 2, rng)
        faces = [
            type(f)(**{**f.__dict__, "embedding": rng.standard_normal(width).astype(np.float32)})
            for f in faces
        ]
        store.add_faces(c, faces)
        table, _ = store.load_faces(c)
        assert table.embeddings.shape == (2, width)
        got = store.get_face(c, faces[0].face_id)
        assert got is not None and np.array_equal(got.embedding, faces[0].embedding)


def test_bootstrap_reports_a_missing_or_unreachable_database_at_start_up():
    with pytest.raises(RuntimeError, match="REKFACE_PG_DSN"):
        build_store(Settings(store="postgres", pg_dsn=""))
    with pytest.raises(RuntimeError, match="cannot use PostgreSQL"):
        # A closed port on loopback: refused at once.
        build_store(
            Settings(store="postgres", pg_dsn="postgresql://x@127.0.0.1:9/x?connect_timeout=2")
        )


def test_settings_of_the_postgres_store():
    s = Settings.from_env(
        {
            "REKFACE_STORE": "postgres",
            "REKFACE_PG_DSN": "postgresql://db/rekface",
            "REKFACE_PG_POOL_SIZE": "4",
            "REKFACE_PG_STATEMENT_TIMEOUT_MS": "0",
        }
    )
    assert (s.store, s.pg_pool_size, s.pg_statement_timeout_ms) == ("postgres", 4, 0)
    assert s.token_secret == ""  # unset: the store's shared secret
    with pytest.raises(ValueError, match="REKFACE_PG_POOL_SIZE"):
        Settings.from_env({"REKFACE_PG_POOL_SIZE": "0"})
    with pytest.raises(ValueError, match="REKFACE_STORE"):
        Settings.from_env({"REKFACE_STORE": "mysql"})


def test_rekface_purge_command_on_the_postgres_store(dsn, stores, monkeypatch, capsys):
    from rekface.cli import main

    store = stores(dsn)
    c = store.create_collection("c")
    store.add_faces(c, image_faces(c, 3, np.random.default_rng(0)))

    def crash(*args):
        raise RuntimeError("killed mid-purge")

    monkeypatch.setattr(PostgresStore, "_purge_batch", crash)
    store.delete_collection("c")
    monkeypatch.undo()
    assert list(store._tombstones()) == [c.incarnation]
    monkeypatch.delenv("REKFACE_TOKEN_SECRET", raising=False)
    assert main(["purge", "--store", "postgres", "--pg-dsn", dsn]) == 0
    assert "1 interrupted collection deletion(s) finished" in capsys.readouterr().out
    assert list(store._tombstones()) == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT COUNT(*) FROM rekface_faces").fetchone()[0] == 0


def test_connections_the_server_dropped_are_replaced(dsn, stores):
    """A restart or a failover ends every session: the next requests get fresh connections
    (the pool checks each one before lending it) instead of failing."""
    store = stores(dsn, "s", pool_size=4)
    c = store.create_collection("c")
    with ThreadPoolExecutor(4) as pool:  # several connections in the pool
        list(pool.map(lambda i: store.get_collection("c"), range(8)))
    with psycopg.connect(dsn, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    assert ended >= 1
    for i in range(6):
        store.add_faces(c, image_faces(c, 1, np.random.default_rng(i), f"img{i}"))
    assert store.get_collection("c").face_count == 6


def test_connection_defaults_bound_waits_unless_the_dsn_sets_its_own():
    from psycopg.conninfo import conninfo_to_dict

    from rekface.stores.postgres import CONNECTION_DEFAULTS, bounded_dsn

    mine = conninfo_to_dict(bounded_dsn("postgresql://u:pw@db:5433/rek?connect_timeout=3"))
    assert mine["connect_timeout"] == "3" and mine["password"] == "pw" and mine["port"] == "5433"
    assert mine["tcp_user_timeout"] == CONNECTION_DEFAULTS["tcp_user_timeout"]
    assert conninfo_to_dict(bounded_dsn("host=db"))["connect_timeout"] == "10"
