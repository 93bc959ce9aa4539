"""The store contract, run on SQLite and on DynamoDB (see conftest): the same calls give the same
answers, counts stay exact under concurrency, and a failure midway leaves nothing half visible."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from store_helpers import image_faces, unit

from rekface.errors import (
    InvalidPaginationTokenException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from rekface.search.memory import InMemoryExactSearch
from rekface.stores import keys


def all_faces(store, collection, page=7):
    out, token = [], None
    while True:
        p = store.list_faces(collection, max_results=page, next_token=token)
        out += p.items
        token = p.next_token
        if token is None:
            return out


# ---------------------------------------------------------------------------------------------
# Collections


def test_collection_lifecycle(store):
    created = store.create_collection("family", {"team": "a"})
    assert created.face_count == 0 and created.user_count == 0 and created.version == 0
    got = store.get_collection("family")
    assert got == created
    with pytest.raises(ResourceAlreadyExistsException, match="family already exists"):
        store.create_collection("family")
    assert store.collection_tags("family") == {"team": "a"}
    store.delete_collection("family")
    with pytest.raises(ResourceNotFoundException, match="family does not exist"):
        store.get_collection("family")
    with pytest.raises(ResourceNotFoundException):
        store.delete_collection("family")
    again = store.create_collection("family")
    assert again.incarnation != created.incarnation
    assert store.collection_tags("family") == {}


def test_list_collections_pages_in_id_order(store):
    ids = ["b", "a", "A", "z.z", "m-1", "m_1", "0"]
    for cid in ids:
        store.create_collection(cid)
    seen, token, pages = [], None, 0
    while True:
        page = store.list_collections(max_results=3, next_token=token)
        seen += [c.collection_id for c in page.items]
        assert all(c.face_model_version == "1.0" for c in page.items)
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert seen == sorted(ids) and pages == 3
    assert [c.collection_id for c in store.list_collections().items] == sorted(ids)


def test_list_collections_token_with_longest_ids(store):
    long_ids = ["x" * 254 + c for c in "abc"] + ["Z" * 255, "-" * 255, "9" * 255]
    for cid in long_ids:
        store.create_collection(cid)
    seen, token = [], None
    while True:
        page = store.list_collections(max_results=1, next_token=token)
        seen += [c.collection_id for c in page.items]
        if page.next_token is None:
            break
        assert len(page.next_token) <= 255  # the model's PaginationToken limit
        token = page.next_token
    assert seen == sorted(long_ids)


def test_tags_add_overwrite_remove_and_quota(store):
    store.create_collection("t")
    store.tag_collection("t", {"a": "1", "b": "2"})
    store.tag_collection("t", {"b": "3"})
    store.untag_collection("t", ["a", "not-there"])
    assert store.collection_tags("t") == {"b": "3"}
    store.tag_collection("t", {f"k{i}": "v" for i in range(49)})
    with pytest.raises(ServiceQuotaExceededException):
        store.tag_collection("t", {"one-too-many": "v"})
    assert len(store.collection_tags("t")) == 50  # the failed call changed nothing
    with pytest.raises(ServiceQuotaExceededException):
        store.create_collection("u", {f"k{i}": "v" for i in range(51)})
    for call in (
        lambda: store.tag_collection("nope", {"a": "b"}),
        lambda: store.untag_collection("nope", ["a"]),
        lambda: store.collection_tags("nope"),
    ):
        with pytest.raises(ResourceNotFoundException):
            call()


# ---------------------------------------------------------------------------------------------
# Faces


def test_add_faces_counts_and_dedups(store):
    rng = np.random.default_rng(1)
    c = store.create_collection("c")
    faces = image_faces(c, 3, rng, "one", external="photo:1")
    result = store.add_faces(c, faces)
    assert [f.face_id for f in result.added] == [f.face_id for f in faces]
    assert store.get_collection("c").face_count == 3
    version = store.get_collection("c").version
    assert version == 1
    # The same image again (e.g. a retried IndexFaces): nothing stored twice, nothing changes.
    again = store.add_faces(c, faces)
    assert again.added == [] and store.get_collection("c").face_count == 3
    assert store.get_collection("c").version == version
    listed = all_faces(store, c)
    assert [f.face_id for f in listed] == sorted(f.face_id for f in faces)
    f0 = next(f for f in listed if f.face_id == faces[0].face_id)
    assert f0.external_image_id == "photo:1" and f0.image_id == faces[0].image_id
    assert f0.box == (0.25, 0.5, 0.125, 0.0625) and f0.confidence == 99.5
    assert f0.user_id is None and f0.embedding is None
    stored = store.get_face(c, faces[1].face_id)
    assert np.array_equal(stored.embedding, faces[1].embedding)
    assert store.get_face(c, "00000000-0000-4000-8000-000000000000") is None


def test_add_faces_to_missing_or_recreated_collection(store):
    rng = np.random.default_rng(2)
    c = store.create_collection("c")
    store.delete_collection("c")
    with pytest.raises(ResourceNotFoundException):
        store.add_faces(c, image_faces(c, 1, rng))
    store.create_collection("c")  # same id, new incarnation: the old record is stale
    with pytest.raises(ResourceNotFoundException):
        store.add_faces(c, image_faces(c, 1, rng))
    assert store.get_collection("c").face_count == 0


def test_face_quota(backend):
    store = backend.store
    store.max_faces_per_collection = 4
    rng = np.random.default_rng(3)
    c = store.create_collection("small")
    store.add_faces(c, image_faces(c, 3, rng, "a"))
    with pytest.raises(ServiceQuotaExceededException):
        store.add_faces(c, image_faces(c, 2, rng, "b"))
    assert store.get_collection("small").face_count == 3
    store.add_faces(c, image_faces(c, 1, rng, "c"))
    assert store.get_collection("small").face_count == 4


def test_list_faces_filters_and_pages(backend):
    store = backend.store
    rng = np.random.default_rng(4)
    c = store.create_collection("c")
    faces = [f for i in range(6) for f in image_faces(c, 3, rng, f"img{i}")]
    for i in range(0, len(faces), 3):
        store.add_faces(c, faces[i : i + 3])
    ids = sorted(f.face_id for f in faces)
    assert [f.face_id for f in all_faces(store, c, page=4)] == ids
    assert [f.face_id for f in store.list_faces(c).items] == ids  # default page holds all
    # FaceIds filter: unknown ids are skipped; pages of 2.
    wanted = [*ids[::3], "00000000-0000-4000-8000-000000000000"]
    seen, token = [], None
    while True:
        page = store.list_faces(c, max_results=2, next_token=token, face_ids=wanted)
        seen += [f.face_id for f in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == ids[::3]
    # UserId filter.
    backend.associate(c, ids[1], "alice")
    backend.associate(c, ids[4], "alice")
    backend.associate(c, ids[5], "bob")
    c = store.get_collection("c")
    assert c.user_count == 2
    alice = store.list_faces(c, user_id="alice").items
    assert [f.face_id for f in alice] == [ids[1], ids[4]]
    assert all(f.user_id == "alice" for f in alice)
    page = store.list_faces(c, max_results=1, user_id="alice")
    assert [f.face_id for f in page.items] == [ids[1]]
    page = store.list_faces(c, max_results=1, user_id="alice", next_token=page.next_token)
    assert [f.face_id for f in page.items] == [ids[4]] and page.next_token is None
    both = store.list_faces(c, user_id="alice", face_ids=[ids[4], ids[5]]).items
    assert [f.face_id for f in both] == [ids[4]]
    assert store.list_faces(c, user_id="nobody").items == []


def test_pagination_tokens_are_bound_and_tamper_evident(store):
    rng = np.random.default_rng(5)
    a = store.create_collection("a")
    b = store.create_collection("b")
    for col in (a, b):
        store.add_faces(col, image_faces(col, 4, rng, col.collection_id))
    token = store.list_faces(a, max_results=2).next_token
    assert token is not None and store.list_faces(a, max_results=2, next_token=token).items
    bad = [
        lambda: store.list_faces(b, next_token=token),  # another collection
        lambda: store.list_collections(next_token=token),  # another operation
        lambda: store.list_faces(a, next_token=token, user_id="u"),  # other filters
        lambda: store.list_faces(a, next_token=token, face_ids=["x"]),
        lambda: store.list_faces(a, next_token=token[:-1] + ("A" if token[-1] != "A" else "B")),
        lambda: store.list_faces(a, next_token="not a token"),
        lambda: store.list_faces(a, next_token=""),
        lambda: store.list_faces(a, next_token="\u00e9t\u00e9"),
    ]
    for call in bad:
        with pytest.raises(InvalidPaginationTokenException):
            call()
    # A token outlives nothing: after the collection is re-created it is foreign.
    store.delete_collection("a")
    a2 = store.create_collection("a")
    with pytest.raises(InvalidPaginationTokenException):
        store.list_faces(a2, next_token=token)
    # A token of another deployment (another secret), for the very same page, is refused too.
    bound = keys.binding(a2.incarnation, None, None)
    cursor = keys.pack_uuid("00000000-0000-4000-8000-000000000000")
    foreign = keys.TokenCodec("another-secret").encode("ListFaces", bound, cursor)
    with pytest.raises(InvalidPaginationTokenException):
        store.list_faces(a2, next_token=foreign)
    own = store.tokens.encode("ListFaces", bound, cursor)
    assert store.list_faces(a2, next_token=own).items == []


def test_delete_faces_reasons_and_counts(backend):
    store = backend.store
    rng = np.random.default_rng(6)
    c = store.create_collection("c")
    faces = image_faces(c, 5, rng)
    store.add_faces(c, faces)
    ids = [f.face_id for f in faces]
    backend.associate(c, ids[0], "alice")
    c = store.get_collection("c")
    missing = "00000000-0000-4000-8000-000000000000"
    result = store.delete_faces(c, [ids[0], ids[1], ids[1], missing, ids[2]])
    assert result.deleted == [ids[1], ids[2]]
    reasons = {u.face_id: (u.reasons, u.user_id) for u in result.unsuccessful}
    assert reasons == {
        ids[0]: (["ASSOCIATED_TO_AN_EXISTING_USER"], "alice"),
        missing: (["FACE_NOT_FOUND"], None),
    }
    after = store.get_collection("c")
    assert after.face_count == 3 and after.version == c.version + 1
    assert {f.face_id for f in all_faces(store, c)} == {ids[0], ids[3], ids[4]}
    nothing = store.delete_faces(after, [ids[1]])
    assert nothing.deleted == [] and nothing.unsuccessful[0].reasons == ["FACE_NOT_FOUND"]
    assert store.get_collection("c").version == after.version  # no write, no new version
    store.delete_collection("c")
    with pytest.raises(ResourceNotFoundException):
        store.delete_faces(after, [ids[3]])


def test_delete_collection_removes_faces_users_and_tags(backend):
    store = backend.store
    rng = np.random.default_rng(7)
    c = store.create_collection("c", {"k": "v"})
    faces = image_faces(c, 4, rng)
    store.add_faces(c, faces)
    backend.associate(c, faces[0].face_id, "alice")
    assert backend.raw_items(c.incarnation) >= 5
    store.delete_collection("c")
    assert backend.raw_items(c.incarnation) == 0
    assert list(store._tombstones()) == []
    assert [x.collection_id for x in store.list_collections().items] == []


def test_search_table_is_exact_for_its_version(store, search):
    rng = np.random.default_rng(8)
    c = store.create_collection("c")
    faces = image_faces(c, 6, rng)
    store.add_faces(c, faces)
    table, record = store.load_faces(c)
    assert record.version == 1 and len(table) == 6
    by_id = {f.face_id: f for f in faces}
    for i in range(len(table)):
        rec = table.record(i)
        assert np.array_equal(table.embeddings[i], by_id[rec.face_id].embedding)
        assert rec.box == by_id[rec.face_id].box
    matches = search.search(store.get_collection("c"), faces[2].embedding, 3, -1.0)
    assert matches[0].face.face_id == faces[2].face_id
    assert matches[0].cosine == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# Concurrency: FaceCount stays exact


def test_concurrent_index_and_delete_keep_face_count_exact(backend):
    store = backend.store
    rng = np.random.default_rng(9)
    c = store.create_collection("busy")
    images = [image_faces(c, 1 + i % 3, rng, f"img{i}") for i in range(24)]
    # Every image is indexed by two threads at once (a retried request): stored once.
    jobs = [img for img in images for _ in range(2)]
    random.Random(0).shuffle(jobs)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda faces: store.add_faces(c, faces), jobs))
    expected = sum(len(img) for img in images)
    assert sum(len(r.added) for r in results) == expected  # each face added exactly once
    assert store.get_collection("busy").face_count == expected
    assert len(all_faces(store, c)) == expected

    ids = [f.face_id for img in images for f in img]
    # Overlapping deletions from 8 threads: each face is reported deleted by exactly one.
    batches = [ids[i : i + 7] for i in range(0, len(ids), 5)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda batch: store.delete_faces(c, batch), batches))
    deleted = [f for o in outcomes for f in o.deleted]
    assert sorted(deleted) == sorted(ids)
    for o in outcomes:
        assert all(u.reasons == ["FACE_NOT_FOUND"] for u in o.unsuccessful)
    final = store.get_collection("busy")
    assert final.face_count == 0 and all_faces(store, c) == []
    assert final.version >= 1 + 24  # every write bumped it


def test_concurrent_index_and_delete_interleaved(backend):
    store = backend.store
    rng = np.random.default_rng(10)
    c = store.create_collection("mixed")
    first = [image_faces(c, 2, rng, f"a{i}") for i in range(10)]
    for img in first:
        store.add_faces(c, img)
    second = [image_faces(c, 2, rng, f"b{i}") for i in range(10)]
    deletes = [[f.face_id for f in img] for img in first]
    work = [("add", img) for img in second] + [("del", ids) for ids in deletes]
    random.Random(1).shuffle(work)

    def do(job):
        kind, arg = job
        return store.add_faces(c, arg) if kind == "add" else store.delete_faces(c, arg)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(do, work))
    remaining = {f.face_id for f in all_faces(store, c)}
    assert remaining == {f.face_id for img in second for f in img}
    assert store.get_collection("mixed").face_count == 20


# ---------------------------------------------------------------------------------------------
# Failures midway leave nothing visible


class Boom(RuntimeError):
    pass


def crash(*args, **kwargs):
    raise Boom()


def test_failure_midway_through_index_faces_leaves_nothing_visible(backend, monkeypatch):
    if backend.transactional:
        store = backend.store
        # Fail after the face rows are written, before FaceCount: the transaction rolls back.
        monkeypatch.setattr(type(store), "_bump", crash)
        n = 5
    else:
        # A small transaction limit puts this 5-face image on the staged path (as a 99- or
        # 100-face image is); fail after staging, before the commit.
        store = backend.new_store(max_transaction_actions=6, staging_lease_seconds=0)
        monkeypatch.setattr(type(store), "_commit_staged_faces", crash)
        n = 5
    rng = np.random.default_rng(11)
    c = store.create_collection("c")
    faces = image_faces(c, n, rng)
    with pytest.raises(Boom):
        store.add_faces(c, faces)
    if backend.kind == "dynamodb":
        assert backend.raw_faces(c.incarnation) == n  # staged items exist, invisible
    search = InMemoryExactSearch(store)
    now = store.get_collection("c")
    assert now.face_count == 0 and now.version == 0
    assert all_faces(store, c) == []
    assert store.list_faces(c, face_ids=[f.face_id for f in faces]).items == []
    assert search.search(now, faces[0].embedding, 10, -1.0) == []
    assert store.get_face(c, faces[0].face_id) is None
    gone = store.delete_faces(now, [faces[0].face_id])
    assert gone.deleted == [] and gone.unsuccessful[0].reasons == ["FACE_NOT_FOUND"]
    monkeypatch.undo()
    # Retrying the same image succeeds once, completely.
    result = store.add_faces(c, faces)
    assert len(result.added) == n
    assert store.get_collection("c").face_count == n == len(all_faces(store, c))
    assert backend.raw_faces(c.incarnation) == n


def test_large_image_staged_path_and_interrupted_roll_forward(backend, monkeypatch):
    """DynamoDB's path for images with more new faces than one transaction holds (here the limit
    is lowered to 6 actions): all faces appear at once; a crash after the commit still shows
    them all, and the next call on the image finishes the roll-forward. SQLite has one path."""
    store = backend.new_store(max_transaction_actions=6, staging_lease_seconds=0)
    rng = np.random.default_rng(12)
    c = store.create_collection("big")
    faces = image_faces(c, 9, rng)
    if backend.kind == "dynamodb":
        monkeypatch.setattr(type(store), "_roll_forward", crash)
        with pytest.raises(Boom):
            store.add_faces(c, faces)
        monkeypatch.undo()
    else:
        store.add_faces(c, faces)
    # Committed: visible and counted, whether rolled forward or not.
    assert store.get_collection("big").face_count == 9
    assert {f.face_id for f in all_faces(store, c, page=4)} == {f.face_id for f in faces}
    table, _ = store.load_faces(c)
    assert len(table) == 9
    # Deleting one of them (finishes the roll-forward first), then re-indexing the image.
    out = store.delete_faces(store.get_collection("big"), [faces[0].face_id])
    assert out.deleted == [faces[0].face_id]
    again = store.add_faces(c, faces)
    assert [f.face_id for f in again.added] == [faces[0].face_id]
    assert store.get_collection("big").face_count == 9 == len(all_faces(store, c))


def test_failure_midway_through_delete_collection(backend, monkeypatch):
    store = backend.store
    rng = np.random.default_rng(13)
    c = store.create_collection("doomed", {"k": "v"})
    for i in range(4):
        store.add_faces(c, image_faces(c, 3, rng, f"img{i}"))
    backend.associate(c, image_faces(c, 3, rng, "img0")[0].face_id, "alice")
    real_batch = type(store)._purge_batch
    calls = []

    def one_batch_then_crash(self, incarnation):
        calls.append(incarnation)
        if len(calls) > 1:
            raise Boom()
        return real_batch(self, incarnation)

    monkeypatch.setattr(type(store), "_purge_batch", one_batch_then_crash)
    if backend.transactional:
        monkeypatch.setattr(f"{backend.module}.PURGE_BATCH", 5)
    store.delete_collection("doomed")  # answers: the collection is deleted for every reader
    monkeypatch.undo()
    assert backend.raw_items(c.incarnation) > 0  # the purge was cut short
    with pytest.raises(ResourceNotFoundException):
        store.get_collection("doomed")
    with pytest.raises(ResourceNotFoundException):
        store.collection_tags("doomed")
    with pytest.raises(ResourceNotFoundException):
        store.load_faces(c)
    assert "doomed" not in [x.collection_id for x in store.list_collections().items]
    # Re-created under the same id: a new incarnation that sees none of the old items.
    fresh = store.create_collection("doomed")
    assert fresh.face_count == 0 and all_faces(store, fresh) == []
    assert store.collection_tags("doomed") == {}
    assert store.list_faces(fresh, user_id="alice").items == []
    assert InMemoryExactSearch(store).search(fresh, unit(rng)[0], 10, -1.0) == []
    assert list(store._tombstones()) == [c.incarnation]
    assert store.resume_purges() == 1
    assert backend.raw_items(c.incarnation) == 0 and list(store._tombstones()) == []


def test_rekface_purge_command_finishes_interrupted_deletions(tmp_path, monkeypatch, capsys):
    """`rekface purge` on the embedded store (the DynamoDB path is the same base method)."""
    from rekface.cli import main
    from rekface.stores.sqlite import SqliteStore

    store = SqliteStore.in_dir(tmp_path, "x")
    c = store.create_collection("c")
    store.add_faces(c, image_faces(c, 3, np.random.default_rng(0)))
    monkeypatch.setattr(SqliteStore, "_purge_batch", crash)
    store.delete_collection("c")
    monkeypatch.undo()
    assert list(store._tombstones()) == [c.incarnation]
    monkeypatch.setenv("REKFACE_STORE", "sqlite")
    assert main(["purge", "--data-dir", str(tmp_path)]) == 0
    assert "1 interrupted collection deletion(s) finished" in capsys.readouterr().out
    assert list(store._tombstones()) == []
    assert store._conn().execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 0
