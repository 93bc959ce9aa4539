"""The cluster suite (`make test-cluster`): PostgreSQL, three `rekface serve` and nginx on
127.0.0.1, started once for the session (tests/cluster/harness.py). Not part of `make test`: it is
collected only with REKFACE_CLUSTER=1, which `make test-cluster` sets.

REKFACE_CLUSTER_IMAGE=<image> runs the servers as containers of that image (`--network host`);
without it they are processes of this venv. REKFACE_CLUSTER_STORE=postgres|sqlite|auto picks the
store the replicas share (auto: PostgreSQL when this checkout has the PostgreSQL store).
REKFACE_CLUSTER_KEEP=1 keeps the cluster's temporary directory (logs, nginx access log) after it
stops.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness import Cluster, client

if os.environ.get("REKFACE_CLUSTER") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with Cluster(
        replicas=3,
        image=os.environ.get("REKFACE_CLUSTER_IMAGE") or None,
        store=os.environ.get("REKFACE_CLUSTER_STORE", "auto"),
    ) as running:
        print(
            f"\ncluster: {len(running.servers)} servers ({running.image or 'processes'}), "
            f"store {running.store}, started in "
            + ", ".join(f"{s:.1f}" for s in running.startup_seconds)
            + " s each, balancer "
            + running.url
        )
        yield running


@pytest.fixture(scope="session")
def rekognition(cluster: Cluster) -> Any:
    """boto3 against the balancer."""
    return client(cluster.url)
