"""The one place where clients, stores and models are built for a process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rekface.adapters.s3 import S3ImageFetcher
from rekface.engine.faces import FaceEngine
from rekface.operations.context import Context
from rekface.settings import Settings

if TYPE_CHECKING:
    from rekface.adapters.lambda_s3 import S3Flows


def build_context(settings: Settings | None = None) -> Context:
    settings = settings or Settings.from_env()
    return Context(settings=settings, engine=FaceEngine(settings), images=S3ImageFetcher())


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
