"""`rekface vectors move` and `rekface vectors gc` against a live PostgreSQL: a collection indexed
while rekface searched in memory is moved into pgvector (progress bar on stderr), interrupted
and resumed, then searched; the index of a collection deleted behind the backend's back is
dropped by gc; `vectors reindex` rebuilds a collection's graphs with other parameters. And
`rekface serve --search pgvector` without a DSN says what is missing."""

from __future__ import annotations

import sqlite3

import numpy as np
import psycopg.errors
import pytest

from rekface.adapters.bootstrap import build_search, build_store
from rekface.cli import main
from rekface.search import pg_schema
from rekface.search.pgvector import PgVectorSearch
from rekface.settings import Settings
from rekface.stores import keys
from rekface.stores.records import FaceRecord
from rekface.stores.sqlite import SqliteStore

SECRET = "vectors-cli-test"  # any secret: the commands never read a token this store made


def populate(data_dir, name: str, n: int, rng) -> list[FaceRecord]:
    store = SqliteStore.in_dir(data_dir, SECRET)
    collection = store.create_collection(name)
    faces = []
    for start in range(0, n, 10):
        image = keys.image_id(collection.incarnation, f"{name}-{start}".encode().ljust(20), None)
        v = rng.standard_normal((10, 128)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        batch = [
            FaceRecord(keys.face_id(image, i), image, None, (0.1, 0.1, 0.1, 0.1), 99.0, None, v[i])
            for i in range(10)
        ]
        store.add_faces(collection, batch)
        faces += batch
    return faces


def test_move_interrupt_resume_and_gc(live_postgres, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REKFACE_TOKEN_SECRET", SECRET)
    rng = np.random.default_rng(0)
    faces = populate(tmp_path, "moved", 60, rng)
    dsn = live_postgres.new_database()
    args = ["--data-dir", str(tmp_path), "--search", "pgvector", "--pg-dsn", dsn]

    real_put = PgVectorSearch.put_faces
    calls: list[int] = []

    def interrupted(self, collection, batch):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(batch))
        real_put(self, collection, batch)

    monkeypatch.setattr(PgVectorSearch, "put_faces", interrupted)
    assert main(["vectors", "move", "moved", "--batch", "20", *args]) == 130
    err = capsys.readouterr().err
    assert "40/60 faces" in err and "run the same command again to resume" in err

    monkeypatch.setattr(PgVectorSearch, "put_faces", real_put)
    assert main(["vectors", "move", "moved", "--batch", "20", *args]) == 0
    err = capsys.readouterr().err
    assert "moved [##############################] 60/60 faces" in err

    store = SqliteStore.in_dir(tmp_path, SECRET)
    collection = store.get_collection("moved")
    backend = PgVectorSearch(store, dsn, exact_below=0)
    got = backend.search(collection, faces[33].embedding, 60, -1.0)
    assert len(got) == 60 and got[0].face.face_id == faces[33].face_id

    # A collection deleted while its index was not told (another deployment, a crash): gc.
    store.delete_collection("moved")
    assert collection.incarnation in backend._incarnations()
    assert main(["vectors", "gc", *args]) == 0
    assert "dropped 1 index(es)" in capsys.readouterr().out
    assert collection.incarnation not in backend._incarnations()
    backend.pool.close()


def test_commands_refuse_a_backend_without_settings(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("REKFACE_PG_DSN", raising=False)
    monkeypatch.delenv("REKFACE_SEARCH", raising=False)
    assert main(["serve", "--data-dir", str(tmp_path), "--search", "pgvector"]) == 2
    assert "REKFACE_PG_DSN" in capsys.readouterr().err
    assert main(["vectors", "move", "x", "--data-dir", str(tmp_path)]) == 2
    assert "--search s3vectors or pgvector" in capsys.readouterr().err
    with pytest.raises(ValueError, match="REKFACE_SEARCH"):
        Settings.from_env({"REKFACE_SEARCH": "faiss"})


def test_commands_refuse_an_unusable_store_or_backend_at_start(tmp_path, capsys, monkeypatch):
    """A server that cannot reach its engine, or a data file of another schema version, stops
    at start with a message, rather than answering 500 to every request."""
    monkeypatch.delenv("REKFACE_SEARCH", raising=False)
    dead = "postgresql://rekface@127.0.0.1:1/rekface?connect_timeout=2"
    assert (
        main(["serve", "--data-dir", str(tmp_path), "--search", "pgvector", "--pg-dsn", dead]) == 2
    )
    assert "cannot use PostgreSQL" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / "rekface.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    for argv in (["serve"], ["purge"], ["vectors", "gc", "--search", "pgvector", "--pg-dsn", dead]):
        assert main([*argv, "--data-dir", str(other)]) == 2
        assert "schema version 99" in capsys.readouterr().err


def test_reindex_rebuilds_a_collections_graphs_with_new_parameters(
    live_postgres, tmp_path, capsys, monkeypatch
):
    """`rekface vectors reindex` rebuilds one collection's HNSW graphs (faces and users' centroids)
    with other m / ef_construction, finishes a rebuild that was interrupted (its invalid copy is
    dropped first), leaves other collections as they were, and searches give the same answer."""
    monkeypatch.setenv("REKFACE_TOKEN_SECRET", SECRET)
    rng = np.random.default_rng(1)
    faces = populate(tmp_path, "tuned", 60, rng)
    populate(tmp_path, "untouched", 20, rng)
    dsn = live_postgres.new_database()
    args = ["--data-dir", str(tmp_path), "--search", "pgvector", "--pg-dsn", dsn]
    assert main(["vectors", "move", "tuned", "untouched", *args]) == 0
    store = SqliteStore.in_dir(tmp_path, SECRET)
    tuned, untouched = store.get_collection("tuned"), store.get_collection("untouched")
    backend = PgVectorSearch(store, dsn, exact_below=0)
    table = pg_schema.partition_name(tuned.incarnation)
    with backend.pool.connection() as conn:
        # What an interrupted REINDEX CONCURRENTLY leaves: an index marked invalid.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY tuned_ccnew ON {table} (incarnation)")
        assert conn.execute("SELECT to_regclass('tuned_ccnew')").fetchone()[0] is not None
    capsys.readouterr()

    tune = ["vectors", "reindex", "tuned", "--m", "24", "--ef-construction", "60"]
    assert main([*tune, "--maintenance-work-mem", "lots", *args]) == 1
    assert 'invalid value for parameter "maintenance_work_mem": "lots"' in capsys.readouterr().err
    assert main([*tune, "--maintenance-work-mem", "256MB", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rekface: tuned: rebuilt in ")
    assert out.count("(m 24, ef_construction 60, ") == 2  # the faces' and the users' graphs
    with backend.pool.connection() as conn:
        assert conn.execute("SELECT to_regclass('tuned_ccnew')").fetchone()[0] is None
        for name in (table, pg_schema.users_partition_name(tuned.incarnation)):
            graph = pg_schema.graph_options(conn, name)
            assert (graph.m, graph.ef_construction) == (24, 60)
        other = pg_schema.graph_options(conn, pg_schema.partition_name(untouched.incarnation))
        assert (other.m, other.ef_construction) == (
            pg_schema.HNSW_M,
            pg_schema.HNSW_EF_CONSTRUCTION,
        )
    got = backend.search(tuned, faces[7].embedding, 60, -1.0)
    assert len(got) == 60 and got[0].face.face_id == faces[7].face_id
    backend.pool.close()

    # Refused before touching anything: pgvector's limits, an unknown collection, other backends.
    for bad, message in (
        (["--m", "1"], "m must be between 2 and 100, got 1"),
        (["--m", "32", "--ef-construction", "40"], "at least 2 m (64), got 40"),
    ):
        assert main(["vectors", "reindex", "tuned", *bad, *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["vectors", "reindex", "nosuch", "--m", "24", *args]) == 1
    assert "nosuch" in capsys.readouterr().err
    memory = ["--data-dir", str(tmp_path), "--search", "memory"]
    assert main(["vectors", "reindex", "tuned", "--m", "24", *memory]) == 2


def test_ef_search_is_a_setting(live_postgres, tmp_path, capsys):
    assert Settings.from_env({}).pg_ef_search == 200
    settings = Settings.from_env(
        {
            "REKFACE_PG_EF_SEARCH": "400",
            "REKFACE_SEARCH": "pgvector",
            "REKFACE_PG_DSN": live_postgres.dsn,
            "REKFACE_DATA_DIR": str(tmp_path),
        }
    )
    backend = build_search(settings, build_store(settings))
    assert backend.ef_search == 400
    backend.pool.close()
    with pytest.raises(ValueError, match="REKFACE_PG_EF_SEARCH must be between 1 and 1000"):
        Settings.from_env({"REKFACE_PG_EF_SEARCH": "1001"})
    with pytest.raises(SystemExit):
        main(["serve", "--search", "pgvector", "--pg-ef-search", "0"])
    assert "--pg-ef-search: must be an integer from 1 to 1000, got '0'" in capsys.readouterr().err
