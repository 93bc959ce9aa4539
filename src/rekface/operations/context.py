"""What an operation gets to work with: long-lived services built once per process by the
bootstrap (``rekface.adapters.bootstrap``). Operations never branch on where they run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rekface.settings import Settings

if TYPE_CHECKING:
    from rekface.engine.faces import FaceEngine
    from rekface.search.base import SearchBackend
    from rekface.stores.base import Store


class ImageFetcher(Protocol):
    """Reads an S3 object for ``Image.S3Object``; raises InvalidS3ObjectException or
    ImageTooLargeException (over ``max_bytes``)."""

    def fetch(self, bucket: str, name: str, version: str | None, max_bytes: int) -> bytes: ...


@dataclass
class Context:
    settings: Settings
    engine: FaceEngine
    images: ImageFetcher
    store: Store = None  # type: ignore[assignment]  # collections, faces, users, tags
    search: SearchBackend = None  # type: ignore[assignment]  # face search over a collection

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def account_id(self) -> str:
        return self.settings.account_id
