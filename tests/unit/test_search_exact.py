"""Exact top-k equals brute force, and the in-memory backend stays coherent with the store."""

from __future__ import annotations

import numpy as np
import pytest

from rekface.search.exact import PrunedIndex, cosines, top_k
from rekface.search.memory import InMemoryExactSearch
from rekface.stores import keys
from rekface.stores.records import FaceRecord, id_text
from rekface.stores.sqlite import SqliteStore


def brute_force(m, q, k, min_cos, ids, exclude=None):
    """Score every face, sort by (cosine desc, FaceId), keep those >= min_cos, take k."""
    scores = cosines(m, np.arange(len(m)), q)
    ok = scores >= min_cos
    if exclude is not None:
        ok[exclude] = False
    rows = np.flatnonzero(ok)
    return rows[np.lexsort((ids[rows], -scores[rows]))][:k].tolist()


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
            assert np.array_equal(cos, cosines(m, rows, q))
            assert np.allclose(cos, (m @ q)[rows], atol=1e-6)
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
    assert len(table) == 90 and not set(gone) & {id_text(x) for x in table.face_ids}
    assert search.loads == 1  # every change applied in place
    assert np.array_equal(search.face_embedding(now, added[50].face_id), added[50].embedding)
    assert search.face_embedding(now, added[0].face_id) is None
    # What it holds equals a fresh load from the store.
    fresh, _ = store.load_faces(now)
    assert sorted(fresh.face_ids.tolist()) == sorted(table.face_ids.tolist())
    assert search.memory_bytes() < 1024 * len(table) * 2  # capacity headroom included


def cone(rng, n, spread=0.3):
    """Face-like unit vectors: a narrow cone around one direction, as real embeddings are."""
    axis = rng.standard_normal(128)
    axis /= np.linalg.norm(axis)
    scales = np.linspace(1.0, 0.1, 128) * spread / np.sqrt(128)
    v = axis + rng.standard_normal((n, 128)) * scales
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["cone", "uniform"])
def test_pruned_index_equals_brute_force(kind):
    rng = np.random.default_rng(42)
    n = 6000  # PrunedIndex works at any size (the backend uses it from MIN_ROWS on)
    m = cone(rng, n) if kind == "cone" else faces_matrix(rng, n)
    m[100:110] = m[5]  # exact ties
    ids = np.array([f"{i:08x}-0000-4000-8000-000000000000" for i in rng.permutation(n)], "S36")
    index = PrunedIndex.fit(m, capacity=n + 100)
    for qi in (5, 17, n - 1):
        q = m[qi]
        for k, min_cos in [(1, -1.0), (80, -1.0), (80, 0.9), (80, 0.99), (1000, 0.5), (3, 1.1)]:
            for exclude in (None, qi):
                rows, cos = index.top_k(n, m, q, k, min_cos, ids, exclude)
                assert rows.tolist() == brute_force(m, q, k, min_cos, ids, exclude)
                assert np.allclose(cos, (m @ q)[rows], atol=1e-6)


def faces_matrix(rng, n):
    v = rng.standard_normal((n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_memory_backend_with_pruning_index_stays_exact(tmp_path, monkeypatch):
    monkeypatch.setattr("rekface.search.memory.MIN_ROWS", 40)
    rng = np.random.default_rng(3)
    store = SqliteStore(tmp_path / "db", "s")
    search = InMemoryExactSearch(store)
    c = store.create_collection("c")
    vectors = cone(rng, 200)
    added = []
    for i in range(0, 120, 4):
        batch = faces(rng, 4, f"img{i}")
        batch = [FaceRecord(f.face_id, f.image_id, None, f.box, 99.0, None, vectors[i + j])
                 for j, f in enumerate(batch)]  # fmt: skip
        search.faces_added(store.add_faces(c, batch))
        added += batch
        if i == 60:  # index built at 64 faces, then kept up to date by the appends
            search.search(store.get_collection("c"), vectors[0], 5, -1.0)
            assert search.index_builds == 1
    search.faces_deleted(store.delete_faces(store.get_collection("c"), [added[3].face_id]))
    now = store.get_collection("c")
    live = [f for f in added if f.face_id != added[3].face_id]
    m = np.stack([f.embedding for f in live])
    ids = np.array([f.face_id for f in live], "S36")
    for q in (vectors[3], vectors[50], vectors[150]):
        got = [x.face.face_id for x in search.search(now, q, 10, -1.0)]
        assert got == [live[i].face_id for i in brute_force(m, q, 10, -1.0, ids)]
    assert search.index_builds == 1 and search.loads == 1
