"""SearchFacesByImage through the balancer over 1, 2 and 3 servers (benchmarks/cluster_throughput):
prints the figures and ratios; asserts only that every answer was right, never a speed."""

from __future__ import annotations

import os

from benchmarks import cluster_throughput

SECONDS = float(os.environ.get("REKFACE_CLUSTER_BENCH_SECONDS", "10"))
CLIENTS = 6


def test_search_throughput_with_1_2_3_servers(cluster):
    runs = cluster_throughput.run(cluster, clients=CLIENTS, seconds=SECONDS)
    print("\n" + cluster_throughput.report(runs, CLIENTS) + " (machine shared: see the docs)")
    assert [r.servers for r in runs] == [1, 2, 3]
    for r in runs:
        assert r.requests > 0 and r.wrong == 0
