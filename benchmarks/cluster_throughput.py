"""SearchFacesByImage throughput through nginx in front of 1, 2 and 3 `rekface serve` replicas.

    .venv/bin/python -m benchmarks.cluster_throughput [--seconds 20] [--clients 6] [--image IMG]

One cluster (tests/cluster/harness.py: PostgreSQL store + pgvector search, three servers, all on
127.0.0.1) and three balancers over its first 1, 2 and 3 servers, measured one after the other in
the same run with the same clients, photos and collection; the figures are printed with their
ratio to the 1-server run. Every answer is checked (the probe's person is the first match), so a
fast wrong answer does not count.

What to expect here: the servers share this machine's 2 cores, and one server already runs as many
image operations at once as there are cores (onnxruntime releases the GIL), so a second or third
replica on the *same* machine adds no CPU: the ratio shows the cost or gain of spreading the same
cores over more processes, not the scaling of replicas on machines of their own. On separate
machines each replica brings its own cores, and the database does little per search (one indexed
query), so throughput grows with the replicas until PostgreSQL or the balancer saturates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.shared_faces import identity_photos, image_bytes  # noqa: E402

PEOPLE = 20  # enrolled with their first photo; their second photo is the probe


@dataclass
class Run:
    servers: int
    requests: int
    wrong: int
    seconds: float
    latencies: list[float]
    server_cores: float = 0.0  # CPU the servers used, in cores (CPU seconds per second)
    idle_cores: float = 0.0  # the machine's idle CPU meanwhile, in cores

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def line(self, baseline: Run | None) -> str:
        lat = sorted(self.latencies) or [0.0]
        p50 = statistics.median(lat) * 1000
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] * 1000
        ratio = f"{self.per_second / baseline.per_second:.2f}x" if baseline else "1.00x"
        return (
            f"{self.servers} server(s): {self.per_second:6.2f} searches/s ({ratio}), "
            f"p50 {p50:5.0f} ms, p95 {p95:5.0f} ms, {self.requests} answers, {self.wrong} wrong; "
            f"servers used {self.server_cores:.2f} cores "
            f"({1000 * self.server_cores / max(self.per_second, 1e-9):.0f} ms CPU per search), "
            f"machine idle {self.idle_cores:.2f} cores"
        )


def probes() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(person, photo) to enrol and (person, another photo) to search with."""
    photos: dict[str, list[str]] = {}
    for person, rel in identity_photos():
        photos.setdefault(person, []).append(rel)
    chosen = [p for p in sorted(photos) if len(photos[p]) >= 2][:PEOPLE]
    enrol = [(p, image_bytes(photos[p][0])) for p in chosen]
    search = [(p, image_bytes(photos[p][1])) for p in chosen]
    return enrol, search


def top_match(rekognition, cid: str, photo: bytes) -> str | None:
    matches = rekognition.search_faces_by_image(
        CollectionId=cid, Image={"Bytes": photo}, MaxFaces=1
    )["FaceMatches"]
    return matches[0]["Face"]["ExternalImageId"] if matches else None


def measure(url: str, cid: str, search, servers: int, clients: int, seconds: float) -> Run:
    from tests.cluster.harness import client

    latencies: list[float] = []
    wrong = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def loop(n: int) -> None:
        nonlocal wrong
        rekognition = client(url, attempts=10)
        i = n
        while time.monotonic() < stop_at:
            person, photo = search[i % len(search)]
            i += clients
            t0 = time.monotonic()
            ok = top_match(rekognition, cid, photo) == person
            elapsed = time.monotonic() - t0
            with lock:
                latencies.append(elapsed)
                wrong += not ok

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Run(servers, len(latencies), wrong, time.monotonic() - started, latencies)


def run(cluster, clients: int = 6, seconds: float = 20.0, warmup: float = 3.0) -> list[Run]:
    """Enrol, then measure through balancers over the first 1, 2, 3 servers of ``cluster``."""
    from tests.cluster.harness import client, cpu_seconds, machine_idle_seconds

    enrol, search = probes()
    cid = f"throughput-{uuid.uuid4().hex[:8]}"
    rekognition = client(cluster.url)
    rekognition.create_collection(CollectionId=cid)
    for person, photo in enrol:
        rekognition.index_faces(
            CollectionId=cid, Image={"Bytes": photo}, ExternalImageId=person, MaxFaces=1
        )
    # Probes that the first server answers with their own person (a second photo is not always
    # above the default threshold); every later answer must be the same.
    search = [(p, photo) for p, photo in search if top_match(rekognition, cid, photo) == p]
    assert len(search) >= PEOPLE // 2, f"only {len(search)} probes find their person"
    for server in cluster.servers:  # every server's models and cache warm before any timing
        measure(server.url, cid, search, 1, 2, warmup)
    balancers = {len(cluster.servers): cluster.balancers[0]}
    for n in range(1, len(cluster.servers)):
        balancers[n] = cluster.balancer(over=n)
    runs = []
    for n in sorted(balancers):
        pids = [server.pid() for server in cluster.servers]
        cpu0, idle0 = sum(map(cpu_seconds, pids)), machine_idle_seconds()
        result = measure(balancers[n].url, cid, search, n, clients, seconds)
        result.server_cores = (sum(map(cpu_seconds, pids)) - cpu0) / result.seconds
        result.idle_cores = (machine_idle_seconds() - idle0) / result.seconds
        runs.append(result)
    rekognition.delete_collection(CollectionId=cid)
    return runs


def report(runs: list[Run], clients: int) -> str:
    lines = [
        f"SearchFacesByImage through nginx, {clients} client threads, {PEOPLE} faces "
        f"(wrong: an answer other than the probe's person, found by the first server):"
    ]
    lines += [r.line(runs[0] if r is not runs[0] else None) for r in runs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tests.cluster.harness import Cluster

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per configuration")
    parser.add_argument("--clients", type=int, default=6, help="client threads")
    parser.add_argument("--image", default=None, help="run the servers as this image's containers")
    parser.add_argument("--store", default="auto", choices=("auto", "postgres", "sqlite"))
    args = parser.parse_args(argv)
    with Cluster(replicas=3, image=args.image, store=args.store) as cluster:
        print(
            f"cluster: 3 servers ({args.image or 'processes'}), store {cluster.store}, "
            f"started in {', '.join(f'{s:.1f}' for s in cluster.startup_seconds)} s"
        )
        runs = run(cluster, clients=args.clients, seconds=args.seconds)
    print(report(runs, args.clients))
    return 0


if __name__ == "__main__":
    sys.exit(main())
