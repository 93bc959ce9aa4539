"""The SQLite file's schema version: created with a new file, stamped on an unversioned file of
today's layout, and refused (at start, with a message) for any other."""

from __future__ import annotations

import sqlite3

import pytest

from rekface.stores.sqlite import _LAYOUT, SCHEMA_VERSION, SqliteStore, StoreSchemaError


def layout_and_version(path):
    with sqlite3.connect(path) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        layout = {n: [c[1] for c in conn.execute(f"PRAGMA table_info({n})")] for (n,) in tables}
        return layout, conn.execute("PRAGMA user_version").fetchone()[0]


def test_a_new_file_has_the_declared_layout_and_version(tmp_path):
    SqliteStore(tmp_path / "r.db", "s")
    assert layout_and_version(tmp_path / "r.db") == (_LAYOUT, SCHEMA_VERSION)


def test_an_unversioned_file_of_this_layout_is_stamped_and_keeps_its_data(tmp_path):
    SqliteStore(tmp_path / "r.db", "s").create_collection("kept")
    with sqlite3.connect(tmp_path / "r.db") as conn:
        conn.execute("PRAGMA user_version = 0")  # as files were written before versions
    store = SqliteStore(tmp_path / "r.db", "s")
    assert store.get_collection("kept").collection_id == "kept"
    assert layout_and_version(tmp_path / "r.db")[1] == SCHEMA_VERSION


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION + 1])
def test_other_schemas_are_refused_untouched(tmp_path, version):
    with sqlite3.connect(tmp_path / "r.db") as conn:
        conn.execute("CREATE TABLE faces (incarnation TEXT, face_id TEXT, box BLOB)")
        conn.execute(f"PRAGMA user_version = {version}")
    before = layout_and_version(tmp_path / "r.db")
    with pytest.raises(StoreSchemaError, match=f"schema version {version}"):
        SqliteStore(tmp_path / "r.db", "s")
    assert layout_and_version(tmp_path / "r.db") == before
