"""The one place where clients, stores and models are built for a process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rekface.adapters.s3 import S3ImageFetcher
from rekface.engine.faces import FaceEngine
from rekface.operations.context import Context
from rekface.search.memory import InMemoryExactSearch
from rekface.settings import Settings
from rekface.stores.base import Store

if TYPE_CHECKING:
    from rekface.adapters.lambda_s3 import S3Flows


def build_store(settings: Settings, dynamodb_client: Any = None) -> Store:
    """REKFACE_STORE: ``sqlite`` (default; a file under REKFACE_DATA_DIR / ``--data-dir``) or
    ``dynamodb`` (the table REKFACE_TABLE_NAME, with the standard AWS configuration chain)."""
    if settings.store == "dynamodb":
        from rekface.stores.dynamodb import DynamoDBStore

        if dynamodb_client is None:
            import boto3

            dynamodb_client = boto3.client("dynamodb", region_name=settings.region)
        return DynamoDBStore(dynamodb_client, settings.table_name, settings.token_secret)
    from rekface.stores.sqlite import SqliteStore

    return SqliteStore.in_dir(settings.data_dir, settings.token_secret)


def build_context(settings: Settings | None = None, engine: FaceEngine | None = None) -> Context:
    settings = settings or Settings.from_env()
    store = build_store(settings)
    return Context(
        settings=settings,
        engine=engine or FaceEngine(settings),
        images=S3ImageFetcher(),
        store=store,
        search=InMemoryExactSearch(store),
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
