"""The one place where clients, stores and models are built for a process."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rekface.adapters.s3 import S3ImageFetcher
from rekface.operations.context import Context
from rekface.search.base import SearchBackend
from rekface.search.memory import InMemoryExactSearch
from rekface.settings import Settings
from rekface.stores.base import Store

if TYPE_CHECKING:
    from rekface.adapters.lambda_s3 import S3Flows
    from rekface.engine.faces import FaceEngine


def build_store(settings: Settings, dynamodb_client: Any = None) -> Store:
    """REKFACE_STORE: ``sqlite`` (default; a file under REKFACE_DATA_DIR / ``--data-dir``),
    ``dynamodb`` (the table REKFACE_TABLE_NAME, with the standard AWS configuration chain) or
    ``postgres`` (the database REKFACE_PG_DSN, shared by any number of replicas; needs the
    ``postgres`` extra)."""
    if settings.store == "postgres":
        return _postgres_store(settings)
    if settings.store == "dynamodb":
        from rekface.stores.dynamodb import DynamoDBStore

        if dynamodb_client is None:
            import boto3

            dynamodb_client = boto3.client("dynamodb", region_name=settings.region)
        secret = settings.token_secret or PROCESS_SECRET
        return DynamoDBStore(dynamodb_client, settings.table_name, secret)
    from rekface.stores.sqlite import SqliteStore

    return SqliteStore.in_dir(
        settings.data_dir, settings.token_secret or data_dir_token_secret(settings.data_dir)
    )


TOKEN_SECRET_FILE = "token-secret"


def data_dir_token_secret(data_dir: Path) -> str:
    """The SQLite store's token secret without REKFACE_TOKEN_SECRET: random, made once and kept
    beside the database (mode 0600), so tokens survive restarts but no other server (and no one
    who read rekface's source) can forge or replay them."""
    path = Path(data_dir) / TOKEN_SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name, then linked into place: link() fails if the file
    # exists, so of two processes starting at once one wins and both read the same full secret.
    tmp = path.with_name(f".{TOKEN_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


# The DynamoDB store's token secret when none is configured (REKFACE_TOKEN_SECRET, or the Lambda
# stack's REKFACE_TOKEN_SECRET_ARN for the functions that page, see adapters/token_secret.py):
# random per process, so a token is valid only where it was issued and never forgeable from a
# public default.
PROCESS_SECRET = secrets.token_hex(32)


def _postgres_store(settings: Settings) -> Store:
    """Without REKFACE_TOKEN_SECRET, the secret the database keeps (made at random by the first
    replica), so that a pagination token of one replica verifies on every other."""
    if not settings.pg_dsn:
        raise RuntimeError("REKFACE_STORE=postgres needs REKFACE_PG_DSN (or --pg-dsn)")
    try:
        from rekface.stores.postgres import PostgresStore
    except ImportError as exc:
        raise RuntimeError(
            f"REKFACE_STORE=postgres needs the postgres extra (pip install 'rekface[postgres]'): "
            f"{exc}"
        ) from exc
    try:
        return PostgresStore(
            settings.pg_dsn,
            settings.token_secret or None,
            pool_size=settings.pg_pool_size,
            statement_timeout_ms=settings.pg_statement_timeout_ms,
        )
    except Exception as exc:  # psycopg.OperationalError and kin: the DSN's server
        raise RuntimeError(f"cannot use PostgreSQL at REKFACE_PG_DSN: {exc}") from exc


def build_search(settings: Settings, store: Store, s3vectors_client: Any = None) -> SearchBackend:
    """REKFACE_SEARCH: ``memory`` (default: exact, in this process), ``s3vectors`` (the vector
    bucket REKFACE_VECTOR_BUCKET, one index per collection) or ``pgvector`` (REKFACE_PG_DSN;
    needs the ``pgvector`` extra: psycopg + pgvector)."""
    if settings.search == "s3vectors":
        from rekface.search.s3vectors import S3VectorsSearch

        if not settings.vector_bucket:
            raise RuntimeError("REKFACE_SEARCH=s3vectors needs REKFACE_VECTOR_BUCKET")
        if s3vectors_client is None:
            import boto3
            from botocore.config import Config

            # Adaptive retries: 429 TooManyRequests (an index takes 2,500 vectors/s) and 503
            # are retried with backoff, and the client slows itself down.
            from botocore.exceptions import UnknownServiceError

            try:
                s3vectors_client = boto3.client(
                    "s3vectors",
                    region_name=settings.region,
                    config=Config(retries={"mode": "adaptive", "max_attempts": 10}),
                )
            except UnknownServiceError as exc:  # a botocore older than S3 Vectors
                raise RuntimeError(
                    f"REKFACE_SEARCH=s3vectors needs a newer botocore: {exc}"
                ) from exc
        return S3VectorsSearch(
            store, s3vectors_client, settings.vector_bucket, settings.vector_index_prefix
        )
    if settings.search == "pgvector":
        from rekface.search.pgvector import PgVectorSearch

        if not settings.pg_dsn:
            raise RuntimeError("REKFACE_SEARCH=pgvector needs REKFACE_PG_DSN")
        backend = PgVectorSearch(store, settings.pg_dsn, ef_search=settings.pg_ef_search)
        # Connect (and migrate the schema) now: a missing package or an unreachable server is
        # a start-up error, not a 500 on the first request.
        try:
            with backend.pool.connection():
                pass
        except ImportError as exc:
            raise RuntimeError(
                f"REKFACE_SEARCH=pgvector needs the pgvector extra "
                f"(pip install 'rekface[pgvector]'): {exc}"
            ) from exc
        except Exception as exc:  # psycopg.OperationalError and kin: the DSN's server
            raise RuntimeError(f"cannot use PostgreSQL at REKFACE_PG_DSN: {exc}") from exc
        return backend
    return InMemoryExactSearch(store)


class LazyFaceEngine:
    """A FaceEngine that imports the engine (numpy, onnxruntime, Pillow) on first use: the Lambda
    functions that never decode an image (collections, faces, users, tags) never pay for it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine: FaceEngine | None = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    from rekface.engine.faces import FaceEngine

                    self._engine = FaceEngine(self._settings)
        return getattr(self._engine, name)


def build_context(
    settings: Settings | None = None, engine: FaceEngine | None = None, *, lazy: bool = False
) -> Context:
    """``lazy``: a process that may never run most operations (a data Lambda function) imports
    the engine and each operation's module on first use. Otherwise everything is imported now:
    a server answers its first request without imports, and cannot fail one for lack of a file
    descriptor to read a module with."""
    settings = settings or Settings.from_env()
    store = build_store(settings)
    if engine is None and lazy:
        engine = LazyFaceEngine(settings)  # type: ignore[assignment]  # stands in for one
    elif engine is None:
        from rekface.engine.faces import FaceEngine

        engine = FaceEngine(settings)
    if not lazy:
        from rekface import operations

        operations.load_all()
    return Context(
        settings=settings,
        engine=engine,
        images=S3ImageFetcher(),
        store=store,
        search=build_search(settings, store),
    )


def build_s3_flows(settings: Settings | None = None) -> S3Flows:
    """The S3 event flows of the AWS stack: operations in process, results and listings through
    one S3 client, IndexFaces guarded by the idempotency table (REKFACE_IDEMPOTENCY_TABLE)."""
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from rekface.adapters.lambda_s3 import IdempotencyGuard, S3Flows

    settings = settings or Settings.from_env()
    if not settings.idempotency_table:
        raise RuntimeError("REKFACE_IDEMPOTENCY_TABLE must name the S3 flows' idempotency table")
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
    return S3Flows(build_context(settings), boto3.client("s3"), IdempotencyGuard(persistence))
