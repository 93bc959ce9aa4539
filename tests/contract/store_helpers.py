"""Synthetic faces for the store contract tests (unit embeddings, ids as IndexFaces makes them)."""

from __future__ import annotations

import numpy as np

from rekface.stores import keys
from rekface.stores.records import CollectionRecord, FaceRecord


def unit(rng: np.random.Generator, n: int = 1, dims: int = 128) -> np.ndarray:
    v = rng.standard_normal((n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def image_faces(
    collection: CollectionRecord,
    n: int,
    rng: np.random.Generator,
    name: str = "img",
    external: str | None = None,
    dims: int = 128,
) -> list[FaceRecord]:
    """``n`` faces of one synthetic image, with deterministic ids as IndexFaces makes them, and
    ``dims``-d embeddings (the collection's recognizer pack's)."""
    image = keys.image_id(collection.incarnation, name.encode().ljust(20, b"\0"), external)
    vectors = unit(rng, n, dims)
    return [
        FaceRecord(
            face_id=keys.face_id(image, rank),
            image_id=image,
            external_image_id=external,
            box=(0.25, 0.5, 0.125, 0.0625),
            confidence=99.5,
            embedding=vectors[rank],
        )
        for rank in range(n)
    ]
