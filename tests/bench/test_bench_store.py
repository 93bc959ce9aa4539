"""benchmarks/store_throughput.py on a small scale: the store-write part runs on every store and
prints its ratios (the whole-IndexFaces part is the same operations.run path as the other tests)."""

from __future__ import annotations

from benchmarks.store_throughput import THREADS, VARIANTS, run


def test_store_part_runs_on_every_store(live_postgres, capsys):
    run(writes=40, photos=0, dsn_for=live_postgres.new_database)
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("add_faces")]) == len(THREADS)
    ratios = [line for line in out if "ratio to sqlite" in line]
    assert len(ratios) == len(THREADS) * len(VARIANTS)
