"""Exact top-k equals brute force, and the in-memory backend stays coherent with the store."""

from __future__ import annotations

import numpy as np
import pytest

from rekface.search.exact import top_k
from rekface.search.memory import InMemoryExactSearch
from rekface.stores import keys
from rekface.stores.records import FaceRecord
from rekface.stores.sqlite import SqliteStore


def brute_force(m, q, k, min_cos, ids, exclude=None):
    scores = m @ q
    order = sorted(
        (i for i in range(len(m)) if scores[i] >= min_cos and i != exclude),
        key=lambda i: (-scores[i], ids[i]),
    )
    return order[:k]


@pytest.mark.parametrize("seed", range(6))
def test_top_k_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    m = rng.standard_normal((n, 128)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    # Duplicated rows make exact ties: the FaceId breaks them.
    dup = rng.integers(0, n, size=n // 10)
    m[rng.integers(0, n, size=len(dup))] = m[dup]
    ids = np.array([keys.face_id(str(keys.new_incarnation()), i) for i in range(n)], "S36")
    q = m[int(rng.integers(0, n))]
    for k in (1, 5, 80, n + 3):
        for min_cos in (-1.0, 0.0, 0.1, 0.99):
            exclude = int(rng.integers(0, n)) if k == 5 else None
            rows, cos = top_k(m, q, k, min_cos, ids, exclude)
            assert rows.tolist() == brute_force(m, q, k, min_cos, ids, exclude)
            assert np.array_equal(cos, (m @ q)[rows])
    assert top_k(m[:0], q, 5, -1.0, ids[:0])[0].tolist() == []


def faces(rng, n, image="a"):
    inc = "00000000-0000-4000-8000-000000000000"
    img = keys.image_id(inc, image.encode(), None)
    v = rng.standard_normal((n, 128)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [FaceRecord(keys.face_id(img, i), img, None, (0.1, 0.1, 0.1, 0.1), 99.0, None, v[i])
            for i in range(n)]  # fmt: skip


def test_memory_backend_reloads_only_on_a_new_version(tmp_path):
    rng = np.random.default_rng(0)
    writer = SqliteStore(tmp_path / "db", "s")  # another process, as far as `search` knows
    reader = SqliteStore(tmp_path / "db", "s")
    search = InMemoryExactSearch(reader)
    c = writer.create_collection("c")
    first = faces(rng, 5, "a")
    writer.add_faces(c, first)
    rec = reader.get_collection("c")
    assert search.search(rec, first[0].embedding, 1, -1.0)[0].face.face_id == first[0].face_id
    assert search.loads == 1
    for _ in range(3):  # warm: no reload while the version is unchanged
        search.search(reader.get_collection("c"), first[1].embedding, 3, -1.0)
    assert search.loads == 1
    second = faces(rng, 3, "b")
    writer.add_faces(c, second)  # a write this process was not told about
    rec = reader.get_collection("c")
    top = search.search(rec, second[2].embedding, 1, -1.0)
    assert top[0].face.face_id == second[2].face_id and search.loads == 2
    writer.delete_faces(rec, [second[2].face_id])
    top = search.search(reader.get_collection("c"), second[2].embedding, 10, -1.0)
    assert second[2].face_id not in [m.face.face_id for m in top] and search.loads == 3
    # Same id, new collection: never the old faces.
    writer.delete_collection("c")
    fresh = writer.create_collection("c")
    assert search.search(fresh, first[0].embedding, 10, -1.0) == []


def test_memory_backend_applies_its_own_writes_without_reloading(tmp_path):
    rng = np.random.default_rng(1)
    store = SqliteStore(tmp_path / "db", "s")
    search = InMemoryExactSearch(store)
    c = store.create_collection("c")
    search.search(c, faces(rng, 1)[0].embedding, 1, -1.0)  # load the (empty) collection
    added = []
    for i in range(40):  # grows past the initial capacity several times
        batch = faces(rng, 3, f"img{i}")
        search.faces_added(store.add_faces(c, batch))
        added += batch
    now = store.get_collection("c")
    for f in (added[0], added[-1], added[61]):
        assert search.search(now, f.embedding, 1, -1.0)[0].face.face_id == f.face_id
    gone = [f.face_id for f in added[:30]]
    search.faces_deleted(store.delete_faces(now, gone))
    now = store.get_collection("c")
    table = search.table(now)
    assert len(table) == 90 and not set(gone) & {x.decode() for x in table.face_ids}
    assert search.loads == 1  # every change applied in place
    assert np.array_equal(search.face_embedding(now, added[50].face_id), added[50].embedding)
    assert search.face_embedding(now, added[0].face_id) is None
    # What it holds equals a fresh load from the store.
    fresh, _ = store.load_faces(now)
    assert sorted(fresh.face_ids.tolist()) == sorted(table.face_ids.tolist())
    assert search.memory_bytes() < 1024 * len(table) * 2  # capacity headroom included
