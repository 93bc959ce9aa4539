"""The one place where clients, stores and models are built for a process."""

from __future__ import annotations

from rekface.adapters.s3 import S3ImageFetcher
from rekface.engine.faces import FaceEngine
from rekface.operations.context import Context
from rekface.settings import Settings


def build_context(settings: Settings | None = None) -> Context:
    settings = settings or Settings.from_env()
    return Context(settings=settings, engine=FaceEngine(settings), images=S3ImageFetcher())
