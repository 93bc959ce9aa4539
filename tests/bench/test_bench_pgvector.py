"""benchmarks/pgvector_scale.py runs against a server it did not start (``--pg-dsn``: a user's
Aurora or RDS), end to end at a small size: build, probes, recall and latency lines, and the
partition it built is dropped at the end."""

from __future__ import annotations

import re

import psycopg

from benchmarks.pgvector_scale import main
from rekface.search import pg_schema


def test_the_pgvector_benchmark_runs_on_a_given_server(live_postgres, capsys):
    dsn = live_postgres.new_database()
    small = ["--sizes", "3000", "--probes", "20", "--held-out", "20", "--warmup", "10"]
    main([*small, "--ef-search", "60", "200", "--synthetic-seed", "--pg-dsn", dsn])
    out = capsys.readouterr().out
    assert "server PSS peak during the build n/a (a server elsewhere)" in out
    lines = re.findall(
        r"ef_search +(\d+): same-person recall real ([\d.]+) %.*synthetic ([\d.]+)", out
    )
    assert [int(ef) for ef, *_ in lines] == [60, 200]
    # 3,000 faces and ef_search 200: the graph walk sees nearly all of them.
    assert float(lines[1][1]) >= 99.0 and float(lines[1][2]) >= 99.0
    with psycopg.connect(dsn) as conn:
        assert pg_schema.partitions(conn) == []
