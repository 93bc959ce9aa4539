"""The ``rekface`` command: ``rekface serve`` runs the API on localhost; ``rekface purge``
finishes interrupted collection deletions; ``rekface vectors move`` copies collections' vectors
into a search backend (S3 Vectors, pgvector) and ``rekface vectors gc`` drops the indexes of
deleted collections; ``rekface models`` lists, verifies and calibrates recognizer packs."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from rekface import models_cli
from rekface import serve as serve_options
from rekface.settings import SEARCH_BACKENDS, STORES

DEFAULT_PORT = 8765


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rekface", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Rekognition face API on localhost")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the embedded store keeps collections (default ~/.rekface)",
    )
    serve.add_argument("--verbose", action="store_true", help="log at INFO level")
    serve_options.add_arguments(serve)
    _search_options(serve)
    _pack_options(serve)
    serve.add_argument(
        "--face-model-version",
        type=models_cli.version_arg,
        default=None,
        help="the recognizer pack new collections get and CompareFaces uses "
        "(default REKFACE_FACE_MODEL_VERSION, else 1.0)",
    )
    purge = sub.add_parser(
        "purge",
        help="finish deleting the items of collections whose DeleteCollection was interrupted "
        "(the store of REKFACE_STORE; deleted collections are already invisible)",
    )
    purge.add_argument("--data-dir", type=Path, default=None, help="the embedded store's dir")
    _store_options(purge)
    purge.add_argument("--pg-dsn", default=None, help="PostgreSQL DSN for --store postgres")
    vectors = sub.add_parser(
        "vectors", help="the vector indexes of a search backend on S3 Vectors or pgvector"
    )
    vsub = vectors.add_subparsers(dest="vectors_command", required=True)
    move = vsub.add_parser(
        "move",
        help="copy collections' faces (and users' centroids) from the store into the backend; "
        "resumable: run it again after an interruption",
    )
    move.add_argument("collections", nargs="+", metavar="COLLECTION_ID")
    move.add_argument("--batch", type=int, default=500, help="faces per write (<= 500)")
    move.add_argument("--checkpoint-dir", type=Path, default=None, help="default: <data dir>/moves")
    gc = vsub.add_parser("gc", help="drop the vector indexes of deleted collections")
    reindex = vsub.add_parser(
        "reindex",
        help="pgvector: rebuild collections' HNSW graphs with other build parameters (more "
        "links per face: better recall, slower searches), while searches and writes go on",
    )
    reindex.add_argument("collections", nargs="+", metavar="COLLECTION_ID")
    reindex.add_argument("--m", type=int, required=True, help="links per face (pgvector: 2-100)")
    reindex.add_argument(
        "--ef-construction",
        type=int,
        default=None,  # pg_schema.HNSW_EF_CONSTRUCTION (imported when used: numpy)
        help="candidates kept while building (>= 2 m; default 128, as new collections)",
    )
    reindex.add_argument(
        "--maintenance-work-mem",
        default=None,
        help="PostgreSQL memory for the build, e.g. 8GB (default: the server's setting); "
        "the build is far slower once the graph outgrows it (~0.8 GiB per million faces, m 16)",
    )
    for p in (move, gc, reindex):
        p.add_argument("--data-dir", type=Path, default=None, help="the embedded store's dir")
        _search_options(p)
    models_cli.add_arguments(sub, _pack_options)
    args = parser.parse_args(argv)
    if args.command == "models":
        return models_cli.run(args, _settings(args))
    if args.command == "serve":
        return _serve(args)
    if args.command == "purge":
        return _purge(args)
    if args.command == "vectors":
        return _vectors(args)
    return 2  # pragma: no cover - argparse rejects other commands


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        choices=STORES,
        default=None,
        help="where collections, faces and users are kept (default REKFACE_STORE, else sqlite); "
        "postgres: the database of --pg-dsn, shared by several servers",
    )


def _search_options(p: argparse.ArgumentParser) -> None:
    _store_options(p)
    p.add_argument(
        "--search",
        choices=SEARCH_BACKENDS,
        default=None,
        help="face search backend (default REKFACE_SEARCH, else memory)",
    )
    p.add_argument(
        "--pg-dsn", default=None, help="PostgreSQL DSN for --store postgres and --search pgvector"
    )
    p.add_argument(
        "--pg-ef-search",
        type=_ef_search,
        default=None,
        help="pgvector's hnsw.ef_search, 1-1000 (default REKFACE_PG_EF_SEARCH, else 200): "
        "higher finds more of the true matches in large collections, more slowly",
    )
    p.add_argument("--vector-bucket", default=None, help="S3 vector bucket for --search s3vectors")


def _pack_options(p: argparse.ArgumentParser) -> None:
    models_cli.packs_dir_option(p)


def _ef_search(raw: str) -> int:
    from rekface.settings import PG_EF_SEARCH_RANGE

    low, high = PG_EF_SEARCH_RANGE
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def _settings(args: argparse.Namespace):
    """Settings from the environment, overridden by the command line."""
    from rekface.settings import Settings

    settings = Settings.from_env()
    changes = {}
    if getattr(args, "data_dir", None) is not None:
        changes["data_dir"] = args.data_dir
    if getattr(args, "store", None) is not None:
        changes["store"] = args.store
    if getattr(args, "search", None) is not None:
        changes["search"] = args.search
    if getattr(args, "pg_dsn", None) is not None:
        changes["pg_dsn"] = args.pg_dsn
    if getattr(args, "pg_ef_search", None) is not None:
        changes["pg_ef_search"] = args.pg_ef_search
    if getattr(args, "vector_bucket", None) is not None:
        changes["vector_bucket"] = args.vector_bucket
    changes.update(models_cli.settings_changes(args, settings))  # --packs-dir, --face-model-version
    return replace(settings, **changes)


class ProgressBar:
    """One line on stderr, redrawn in place: bar, count, rate, time left."""

    def __init__(self, label: str, stream=None) -> None:
        import time

        self.label = label
        self.stream = stream or sys.stderr
        self._clock = time.monotonic
        self._start = self._clock()
        self._first: int | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._first is None:
            self._first = done  # resumed: the rate counts this run's faces only
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = (done - self._first) / elapsed
        width = 30
        filled = width if total == 0 else min(width, int(width * done / total))
        left = (total - done) / rate if rate > 0 else 0.0
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} faces "
            f"{rate:,.0f}/s, {int(left) // 60}:{int(left) % 60:02d} left"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _vectors(args: argparse.Namespace) -> int:
    from rekface.adapters.bootstrap import build_search, build_store
    from rekface.errors import RekognitionError
    from rekface.search.indexed import IndexedSearch
    from rekface.search.move import move_collection

    settings = _settings(args)
    try:
        store = build_store(settings)
        backend = build_search(settings, store)
    except RuntimeError as exc:  # see _serve
        print(f"rekface: {exc}", file=sys.stderr)
        return 2
    if not isinstance(backend, IndexedSearch):
        print(
            "rekface: choose a backend with vector indexes: --search s3vectors or pgvector",
            file=sys.stderr,
        )
        return 2
    if args.vectors_command == "gc":
        dropped = backend.drop_orphan_indexes()
        print(f"rekface: dropped {dropped} index(es) of deleted collections")
        return 0
    if args.vectors_command == "reindex":
        return _reindex(args, store, backend)
    checkpoints = args.checkpoint_dir or settings.data_dir / "moves"
    for collection_id in args.collections:
        bar = ProgressBar(collection_id)
        try:
            move_collection(
                store,
                backend,
                collection_id,
                checkpoints / f"{collection_id}.json",
                batch=min(max(args.batch, 1), 500),
                progress=bar,
            )
        except RekognitionError as exc:
            bar.close()
            print(f"rekface: {collection_id}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            bar.close()
            print("rekface: interrupted; run the same command again to resume", file=sys.stderr)
            return 130
        bar.close()
    return 0


def _reindex(args: argparse.Namespace, store, backend) -> int:
    import time

    import psycopg

    from rekface.errors import RekognitionError
    from rekface.search.pg_schema import HNSW_EF_CONSTRUCTION, check_graph_options
    from rekface.search.pgvector import PgVectorSearch

    if not isinstance(backend, PgVectorSearch):
        print("rekface: reindex is for --search pgvector (HNSW graphs)", file=sys.stderr)
        return 2
    ef_construction = HNSW_EF_CONSTRUCTION if args.ef_construction is None else args.ef_construction
    try:
        check_graph_options(args.m, ef_construction)
    except ValueError as exc:
        print(f"rekface: {exc}", file=sys.stderr)
        return 2
    for collection_id in args.collections:
        started = time.monotonic()
        try:
            graphs = backend.rebuild_graphs(
                store.get_collection(collection_id),
                args.m,
                ef_construction,
                args.maintenance_work_mem,
            )
        except (RekognitionError, psycopg.Error) as exc:  # e.g. maintenance_work_mem "lots"
            print(f"rekface: {collection_id}: {exc}".strip(), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("rekface: interrupted; run the same command again to finish", file=sys.stderr)
            return 130
        built = ", ".join(
            f"{g.index} (m {g.m}, ef_construction {g.ef_construction}, {g.bytes / 2**20:,.1f} MiB)"
            for g in graphs
        )
        print(
            f"rekface: {collection_id}: rebuilt in {time.monotonic() - started:.1f} s: "
            f"{built or 'nothing written yet'}"
        )
    return 0


def _purge(args: argparse.Namespace) -> int:
    from rekface.adapters.bootstrap import build_store

    try:
        store = build_store(_settings(args))
    except RuntimeError as exc:  # see _serve
        print(f"rekface: {exc}", file=sys.stderr)
        return 2
    try:
        finished = store.resume_purges()
    finally:
        close = getattr(store, "close", None)  # the PostgreSQL store's pool: its threads stop
        if close is not None:
            close()
    print(f"rekface: {finished} interrupted collection deletion(s) finished")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from rekface import serve

    return serve.run(args, _settings(args))


if __name__ == "__main__":
    sys.exit(main())
