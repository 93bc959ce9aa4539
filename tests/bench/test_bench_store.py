"""benchmarks/store_throughput.py on a small scale: the store-write part runs on both stores and
prints its ratios (the whole-IndexFaces part is the same operations.run path as the other tests)."""

from __future__ import annotations

from benchmarks.store_throughput import THREADS, run


def test_store_part_runs_on_both_stores(live_postgres, capsys):
    run(writes=40, photos=0, dsn_for=live_postgres.new_database)
    lines = [line for line in capsys.readouterr().out.splitlines() if "add_faces" in line]
    assert len(lines) == len(THREADS)
    assert all("ratio postgres/sqlite" in line for line in lines)
