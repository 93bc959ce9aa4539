"""Prometheus metrics of `rekface serve` (the ``prometheus_client`` library's text format).

One registry per server, so several servers in one process (the tests) keep separate counts.
Collection sizes are read from the store when scraped, not counted here, so they stay right
when other processes write to the same database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rekface.adapters.admission import Gate
from rekface.stores.base import Store

log = logging.getLogger("rekface.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Collections reported per scrape: a bound on the scrape's cost (one store read each).
MAX_COLLECTIONS = 1000
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _CollectionSizes:
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        faces = GaugeMetricFamily(
            "rekface_collection_faces", "Faces in each collection", labels=["collection"]
        )
        users = GaugeMetricFamily(
            "rekface_collection_users", "Users in each collection", labels=["collection"]
        )
        try:
            for listing in self.store.list_collections(MAX_COLLECTIONS).items:
                record = self.store.get_collection(listing.collection_id)
                faces.add_metric([record.collection_id], record.face_count)
                users.add_metric([record.collection_id], record.user_count)
        except Exception:  # a scrape must not fail because one read did (deleted meanwhile...)
            log.warning("collection sizes not read for /metrics", exc_info=True)
        yield faces
        yield users


class ServerMetrics:
    def __init__(self, store: Store | None, gates: Iterable[Gate]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rekface_requests",
            "API requests answered, by operation, HTTP status and error code",
            ["operation", "status", "error"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rekface_request_duration_seconds",
            "Time from the request's arrival in the application to its answer",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.throttled = Counter(
            "rekface_requests_throttled",
            "Requests refused with ThrottlingException because the server was at capacity",
            ["operation"],
            registry=self.registry,
        )
        self.faces_indexed = Counter(
            "rekface_faces_indexed", "Faces added by IndexFaces", registry=self.registry
        )
        inflight = Gauge(
            "rekface_requests_in_flight", "Requests at work", ["gate"], registry=self.registry
        )
        queued = Gauge(
            "rekface_requests_queued",
            "Requests waiting for a turn",
            ["gate"],
            registry=self.registry,
        )
        for gate in gates:
            inflight.labels(gate.name).set_function(lambda g=gate: g.inflight)
            queued.labels(gate.name).set_function(lambda g=gate: g.queued)
        if store is not None:
            self.registry.register(_CollectionSizes(store))

    def observe(
        self, operation: str, status: int, error: str, seconds: float, response: Any = None
    ) -> None:
        self.requests.labels(operation, str(status), error).inc()
        self.latency.labels(operation).observe(seconds)
        if error == "ThrottlingException":
            self.throttled.labels(operation).inc()
        if operation == "IndexFaces" and isinstance(response, dict):
            self.faces_indexed.inc(len(response.get("FaceRecords") or ()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
