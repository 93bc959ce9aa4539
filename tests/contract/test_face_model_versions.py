"""Collections of two recognizer packs side by side: a 128-d (the built-in 1.0) and a 192-d one
(a user's pack, 2.0), on every store (SQLite, DynamoDB on moto, PostgreSQL) and every search
backend (in-memory, S3 Vectors, pgvector). Each keeps its version and its embeddings' width through
writes, reads, searches, users' centroids and a second process; neither leaks into the other.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from moto import mock_aws
from store_helpers import image_faces, unit
from test_search_backend_contract import BACKENDS, answer, brute_force, index, make_backend

from rekface.search.base import SearchBackend
from rekface.search.memory import InMemoryExactSearch
from rekface.search.users import centroid
from rekface.stores.sqlite import SqliteStore

WIDTHS = {"1.0": 128, "2.0": 192}


def any_score(members: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """A user score for writes that do not look at it (UserMatchThreshold 0)."""
    return 100.0 * np.clip(np.asarray(candidates) @ centroid(members), 0.0, 1.0)


def two_collections(store, search, rng, images: int = 6, per_image: int = 4):
    """Collection "v1" (1.0, 128-d) and "v2" (2.0, 192-d), filled through the write protocol."""
    made = {}
    for name, version in (("v1", "1.0"), ("v2", "2.0")):
        collection = store.create_collection(name, face_model_version=version)
        faces = []
        for i in range(images):
            batch = image_faces(
                collection, per_image, rng, name=f"{name}-{i}", dims=WIDTHS[version]
            )
            if search is None:
                store.add_faces(collection, batch)
            else:
                index(store, search, collection, batch)
            faces += batch
        made[version] = (store.get_collection(name), faces)
    return made


def test_store_keeps_each_collections_version_and_width(backend):
    store = backend.store
    made = two_collections(store, None, np.random.default_rng(20))
    listing = {c.collection_id: c.face_model_version for c in store.list_collections().items}
    assert listing == {"v1": "1.0", "v2": "2.0"}
    for reader in (store, backend.new_store()):  # this process, and another one
        for version, (collection, faces) in made.items():
            fresh = reader.get_collection(collection.collection_id)
            assert fresh.face_model_version == version
            table, _ = reader.load_faces(fresh)
            assert table.embeddings.shape == (len(faces), WIDTHS[version])
            stored = {table.record(i).face_id: table.embeddings[i] for i in range(len(table))}
            for face in faces:
                assert np.array_equal(stored[face.face_id], face.embedding)
            one = reader.get_face(fresh, faces[3].face_id)
            assert np.array_equal(one.embedding, faces[3].embedding)


def test_users_centroids_have_the_collections_width(backend):
    store = backend.store
    made = two_collections(store, None, np.random.default_rng(21))
    for version, (collection, faces) in made.items():
        for face in faces[:3]:
            backend.associate(collection, face.face_id, "u")
        search = InMemoryExactSearch(store)
        fresh = store.get_collection(collection.collection_id)
        want = centroid(np.stack([f.embedding for f in faces[:3]]))
        (match,) = search.search_users(fresh, want, 5, 0.999)
        assert match.user_id == "u" and match.cosine == pytest.approx(1.0, abs=1e-5)
        assert len(want) == WIDTHS[version]


@pytest.fixture(params=BACKENDS)
def search(request, tmp_path) -> Iterator[tuple[SqliteStore, SearchBackend]]:
    store = SqliteStore(tmp_path / "rekface.db", "contract-secret")
    with mock_aws():
        yield store, make_backend(request.param, store, request)


def test_search_backends_answer_each_width_exactly(search):
    store, backend = search
    rng = np.random.default_rng(22)
    made = two_collections(store, backend, rng)
    for version, (collection, faces) in made.items():
        for probe in (faces[0].embedding, faces[9].embedding, unit(rng, 1, WIDTHS[version])[0]):
            got = answer(backend, store, collection, probe, 10, -1.0)
            assert got and got == brute_force(store, collection, probe, 10, -1.0)
        assert np.array_equal(
            backend.face_embedding(collection, faces[5].face_id), faces[5].embedding
        )
        # Users: a centroid of the collection's width, kept by the backend.
        store.create_user(collection, "u")
        result = store.associate_faces(
            collection, "u", [f.face_id for f in faces[:2]], 0.0, any_score
        )
        backend.users_changed(result.change)
        query = centroid(np.stack([f.embedding for f in faces[:2]]))
        fresh = store.get_collection(collection.collection_id)
        (match,) = backend.search_users(fresh, query, 5, 0.999)
        assert match.user_id == "u" and match.cosine == pytest.approx(1.0, abs=1e-5)
