"""One contract for every search backend: in-memory exact, S3 Vectors (moto + the exact
QueryVectors double) and PostgreSQL + pgvector (a live server; HNSW forced even on these small
collections, so the graph, not a sequential scan, answers).

Writes go through the protocol the operations follow (``faces_adding`` -> store -> ``faces_added``;
store -> ``faces_deleted``; store -> ``collection_deleted``) on a real SQLite store. Answers are
compared with brute force over the store's faces: on these small collections the HNSW graph with
ef_search 100 visits every face, so every backend must give the exact answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from moto import mock_aws
from store_helpers import image_faces, unit

from rekface.search.base import SearchBackend
from rekface.search.indexed import IndexedSearch
from rekface.search.memory import InMemoryExactSearch
from rekface.stores.records import CollectionRecord, FaceRecord
from rekface.stores.sqlite import SqliteStore
from tests.engines import VECTOR_BUCKET, s3vectors_client

BACKENDS = ["memory", "s3vectors", "pgvector"]


@pytest.fixture(params=BACKENDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def store(tmp_path) -> SqliteStore:
    return SqliteStore(tmp_path / "rekface.db", "contract-secret")


def make_backend(
    kind: str, store: SqliteStore, request, own_database: bool = False
) -> SearchBackend:
    if kind == "memory":
        return InMemoryExactSearch(store)
    if kind == "s3vectors":
        from rekface.search.s3vectors import S3VectorsSearch

        # Pages of 7 results: every search of more than 7 faces follows nextToken.
        return S3VectorsSearch(store, s3vectors_client(page_size=7), VECTOR_BUCKET)
    from rekface.search.pgvector import PgVectorSearch

    pg = request.getfixturevalue("live_postgres")
    backend = PgVectorSearch(store, pg.new_database() if own_database else pg.dsn, exact_below=0)
    request.addfinalizer(backend.pool.close)
    return backend


@pytest.fixture
def search(kind: str, store: SqliteStore, request) -> Iterator[SearchBackend]:
    with mock_aws():
        yield make_backend(kind, store, request)


@pytest.fixture
def indexed(search: SearchBackend) -> IndexedSearch:
    assert isinstance(search, IndexedSearch)
    return search


def _only_indexed():
    return pytest.mark.parametrize("kind", ["s3vectors", "pgvector"], indirect=True)


# -----------------------------------------------------------------------------------------------
# The operations' write protocol, as index_faces / delete_faces / delete_collection run it.


def index(store, search, collection: CollectionRecord, faces: list[FaceRecord]):
    search.faces_adding(collection, faces)
    result = store.add_faces(collection, faces)
    search.faces_added(result)
    return result


def delete(store, search, collection: CollectionRecord, face_ids: list[str]):
    result = store.delete_faces(collection, face_ids)
    search.faces_deleted(result)
    return result


def brute_force(store, collection, query, k, min_cosine, exclude=None):
    table, _ = store.load_faces(store.get_collection(collection.collection_id))
    cos = (table.embeddings * query.astype(np.float32)).sum(axis=1, dtype=np.float32)
    ids = [table.record(i).face_id for i in range(len(table))]
    rows = [(-float(c), f) for c, f in zip(cos.tolist(), ids, strict=True) if c >= min_cosine]
    rows = [r for r in sorted(rows) if r[1] != exclude]
    return [(f, -c) for c, f in rows[:k]]


def answer(search, store, collection, query, k, min_cosine, exclude=None):
    fresh = store.get_collection(collection.collection_id)
    return [(m.face.face_id, m.cosine) for m in search.search(fresh, query, k, min_cosine, exclude)]


def gallery(store, search, rng, images=12, per_image=5, name="c"):
    collection = store.create_collection(name)
    faces = []
    for i in range(images):
        batch = image_faces(collection, per_image, rng, name=f"{name}-{i}", external=f"e{i}")
        index(store, search, collection, batch)
        faces += batch
    return store.get_collection(name), faces


# -----------------------------------------------------------------------------------------------


def test_answers_equal_brute_force(store, search):
    rng = np.random.default_rng(1)
    collection, faces = gallery(store, search, rng)
    for probe in [faces[0].embedding, faces[17].embedding, unit(rng)[0]]:
        for k, min_cos in [(1, -1.0), (10, -1.0), (80, -1.0), (25, 0.05), (5, 0.99)]:
            got = answer(search, store, collection, probe, k, min_cos)
            want = brute_force(store, collection, probe, k, min_cos)
            assert [f for f, _ in got] == [f for f, _ in want]
            # Cosines are the in-memory backend's, bit for bit, whatever the engine computed.
            assert [c for _, c in got] == pytest.approx([c for _, c in want], abs=0, rel=0)


def test_records_carry_the_stored_fields(store, search):
    rng = np.random.default_rng(2)
    _, faces = gallery(store, search, rng, images=2)
    (best,) = search.search(store.get_collection("c"), faces[3].embedding, 1, 0.5)
    assert best.face == FaceRecord(
        faces[3].face_id, faces[3].image_id, "e0", faces[3].box, faces[3].confidence
    )
    assert best.face.embedding is None


def test_search_faces_leaves_out_the_searched_face(store, search):
    rng = np.random.default_rng(3)
    collection, faces = gallery(store, search, rng, images=3)
    me = faces[4]
    got = answer(search, store, collection, me.embedding, 5, -1.0, exclude=me.face_id)
    assert me.face_id not in [f for f, _ in got]
    assert got == brute_force(store, collection, me.embedding, 5, -1.0, exclude=me.face_id)
    assert np.array_equal(search.face_embedding(collection, me.face_id), me.embedding)


def test_ties_are_broken_by_face_id(store, search):
    rng = np.random.default_rng(4)
    collection = store.create_collection("ties")
    twins = image_faces(collection, 6, rng, name="twins")
    same = unit(rng)[0]
    twins = [
        FaceRecord(f.face_id, f.image_id, None, f.box, f.confidence, embedding=same) for f in twins
    ]
    index(store, search, collection, twins)
    got = answer(search, store, collection, same, 4, 0.5)
    assert [f for f, _ in got] == sorted(f.face_id for f in twins)[:4]


def test_deleted_faces_are_gone_and_the_rest_stay(store, search):
    rng = np.random.default_rng(5)
    collection, faces = gallery(store, search, rng)
    gone = [f.face_id for f in faces[::3]]
    delete(store, search, collection, gone)
    for probe in faces[:6]:
        got = answer(search, store, collection, probe.embedding, 30, -1.0)
        assert not set(gone) & {f for f, _ in got}
        assert got == brute_force(store, collection, probe.embedding, 30, -1.0)


def test_a_recreated_collection_starts_empty(store, search):
    rng = np.random.default_rng(6)
    collection, faces = gallery(store, search, rng, images=3)
    store.delete_collection("c")
    search.collection_deleted(collection)
    again = store.create_collection("c")
    assert answer(search, store, again, faces[0].embedding, 10, -1.0) == []
    fresh = image_faces(again, 2, rng, name="new")
    index(store, search, again, fresh)
    got = answer(search, store, again, fresh[0].embedding, 10, -1.0)
    assert {f for f, _ in got} == {f.face_id for f in fresh}


def test_empty_collection_and_collections_apart(store, search):
    rng = np.random.default_rng(7)
    empty = store.create_collection("empty")
    assert answer(search, store, empty, unit(rng)[0], 10, -1.0) == []
    a, faces_a = gallery(store, search, rng, images=2, name="a")
    _, faces_b = gallery(store, search, rng, images=2, name="b")
    got = answer(search, store, a, faces_b[0].embedding, 100, -1.0)
    assert {f for f, _ in got} == {f.face_id for f in faces_a}


def test_concurrent_indexing_and_searching(store, search):
    rng = np.random.default_rng(8)
    collection = store.create_collection("busy")
    batches = [image_faces(collection, 4, rng, name=f"b{i}") for i in range(16)]
    probe = batches[0][0].embedding

    def work(i: int) -> None:
        index(store, search, collection, batches[i])
        answer(search, store, collection, probe, 10, -1.0)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(len(batches))))
    got = answer(search, store, collection, probe, 64, -1.0)
    assert got == brute_force(store, collection, probe, 64, -1.0)
    assert len(got) == 64


# -----------------------------------------------------------------------------------------------
# The protocol of backends on an external engine: crashes and races leave no face listed but
# unsearchable, and none searchable without its record.


@_only_indexed()
def test_vectors_without_records_are_never_returned(store, indexed):
    rng = np.random.default_rng(9)
    collection, faces = gallery(store, indexed, rng, images=4)
    # IndexFaces crashed after writing its vectors, before the store write: 40 orphans, each
    # closer to the probe than any real face.
    probe = faces[0].embedding
    ghosts = image_faces(collection, 40, rng, name="ghost")
    near = [
        FaceRecord(g.face_id, g.image_id, None, g.box, g.confidence, embedding=_near(probe, rng))
        for g in ghosts
    ]
    indexed.faces_adding(collection, near)
    got = answer(indexed, store, collection, probe, 10, -1.0)
    assert got == brute_force(store, collection, probe, 10, -1.0)  # over-fetch reached past them
    assert not {g.face_id for g in ghosts} & {f for f, _ in got}


@_only_indexed()
def test_retry_after_a_crash_between_vectors_and_store(store, indexed):
    rng = np.random.default_rng(10)
    collection, _ = gallery(store, indexed, rng, images=2)
    faces = image_faces(collection, 3, rng, name="retried")
    indexed.faces_adding(collection, faces)  # ... crash: the store never saw them
    assert store.get_faces(collection, [f.face_id for f in faces]) == {}
    index(store, indexed, collection, faces)  # the client's retry: same image, same FaceIds
    index(store, indexed, collection, faces)  # and once more: nothing twice
    got = answer(indexed, store, collection, faces[1].embedding, 100, -1.0)
    assert len(got) == 13 and got[0][0] == faces[1].face_id


@_only_indexed()
def test_index_faces_restores_a_vector_deleted_by_a_racing_delete(store, indexed):
    rng = np.random.default_rng(11)
    collection = store.create_collection("race")
    faces = image_faces(collection, 2, rng, name="raced")
    indexed.faces_adding(collection, faces)
    indexed._delete(collection, [faces[0].face_id])  # a concurrent DeleteFaces' vector delete
    result = store.add_faces(collection, faces)
    indexed.faces_added(result)  # reads back, finds one missing, writes it
    got = answer(indexed, store, collection, faces[0].embedding, 1, 0.99)
    assert [f for f, _ in got] == [faces[0].face_id]


@_only_indexed()
def test_delete_faces_restores_a_vector_of_a_face_indexed_again(store, indexed):
    rng = np.random.default_rng(12)
    collection = store.create_collection("race2")
    faces = image_faces(collection, 2, rng, name="again")
    index(store, indexed, collection, faces)
    result = store.delete_faces(collection, [faces[0].face_id])
    index(store, indexed, collection, faces)  # a concurrent IndexFaces re-creates the face
    indexed.faces_deleted(result)  # deletes the vector, sees the record again, writes it back
    assert indexed._present(collection, [faces[0].face_id]) == {faces[0].face_id}
    got = answer(indexed, store, collection, faces[0].embedding, 1, 0.99)
    assert [f for f, _ in got] == [faces[0].face_id]


@_only_indexed()
def test_gc_drops_the_indexes_of_deleted_collections(kind, store, request):
    with mock_aws():
        # A database of its own: gc takes every index of its database that its store does not
        # know for dead, and the session's shared database holds other tests' collections.
        indexed = make_backend(kind, store, request, own_database=True)
        assert isinstance(indexed, IndexedSearch)
        rng = np.random.default_rng(13)
        kept, _ = gallery(store, indexed, rng, images=1, name="kept")
        lost, _ = gallery(store, indexed, rng, images=1, name="lost")
        store.delete_collection("lost")  # ... and the process died before collection_deleted
        assert set(indexed._incarnations()) == {kept.incarnation, lost.incarnation}
        assert indexed.drop_orphan_indexes() == 1
        assert indexed._incarnations() == [kept.incarnation]
        assert indexed.drop_orphan_indexes() == 0


@pytest.mark.parametrize("kind", ["pgvector"], indirect=True)
def test_writes_recreate_a_partition_another_process_dropped(store, indexed):
    """pgvector caches which partitions exist: a face or user write after another process
    dropped the collection's partition (DeleteCollection there) creates it again instead of
    failing a request whose store write may have committed."""
    from rekface.search.indexed import Vector
    from rekface.search.pgvector import PgVectorSearch

    rng = np.random.default_rng(17)
    collection, faces = gallery(store, indexed, rng, images=1, name="c")
    other = PgVectorSearch(store, indexed.pool.dsn, exact_below=0)
    try:
        other._drop(collection.incarnation)
        indexed._put_users(collection, [("u1", faces[0].embedding, 1)])
        other._drop(collection.incarnation)
        indexed._put(collection, [Vector(faces[1].face_id, faces[1].embedding)])
        assert indexed._present(collection, [f.face_id for f in faces]) == {faces[1].face_id}
    finally:
        other.pool.close()


@_only_indexed()
def test_bulk_put_is_idempotent(store, indexed):
    rng = np.random.default_rng(14)
    collection = store.create_collection("bulk")
    faces = image_faces(collection, 30, rng, name="bulk")
    store.add_faces(collection, faces)  # faces stored before this backend existed
    indexed.put_faces(collection, faces[:20])
    indexed.put_faces(collection, faces[10:])
    fresh = store.get_collection("bulk")
    got = answer(indexed, store, fresh, faces[5].embedding, 100, -1.0)
    assert got == brute_force(store, fresh, faces[5].embedding, 100, -1.0) and len(got) == 30


def _near(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    w = v + 0.01 * rng.standard_normal(v.shape).astype(np.float32)
    return (w / np.linalg.norm(w)).astype(np.float32)


# -----------------------------------------------------------------------------------------------
# Users: centroids of their faces, kept in step with the store's user writes.


def accept_all(members, candidates):  # AssociateFaces' score: every face passes the threshold
    return np.full(len(candidates), 100.0)


def associate(store, search, collection, user_id, face_ids):
    fresh = store.get_collection(collection.collection_id)
    if store.get_user(fresh, user_id) is None:
        store.create_user(fresh, user_id)
    result = store.associate_faces(fresh, user_id, face_ids, 0.0, accept_all)
    if result.change is not None:
        search.users_changed(result.change)
    return result


def same_users(got, want) -> bool:
    """Same users in the same order, cosines equal up to float32 rounding of the centroid."""
    return [u for u, _ in got] == [u for u, _ in want] and np.allclose(
        [c for _, c in got], [c for _, c in want], rtol=0, atol=2e-7
    )


def users_brute_force(store, collection, query, k, min_cosine, exclude=None):
    from rekface.search.users import UserVectors

    table, _ = store.load_faces(store.get_collection(collection.collection_id))
    users = UserVectors.from_table(table)
    return [(m.user_id, m.cosine) for m in users.top(query, k, min_cosine, exclude)]


def user_answer(search, store, collection, query, k, min_cosine, exclude=None):
    fresh = store.get_collection(collection.collection_id)
    return [
        (m.user_id, m.cosine) for m in search.search_users(fresh, query, k, min_cosine, exclude)
    ]


def test_users_follow_associations(store, search):
    rng = np.random.default_rng(20)
    collection, faces = gallery(store, search, rng, images=8)
    for u in range(8):  # user u: the faces of image u but the last one
        associate(
            store, search, collection, f"user-{u}", [f.face_id for f in faces[5 * u : 5 * u + 4]]
        )
    probes = [faces[4].embedding, faces[13].embedding, unit(rng)[0]]
    for probe in probes:
        got = user_answer(search, store, collection, probe, 5, -1.0)
        want = users_brute_force(store, collection, probe, 5, -1.0)
        assert [u for u, _ in got] == [u for u, _ in want]
        assert [c for _, c in got] == pytest.approx([c for _, c in want], abs=2e-7)
    # A face moves: out of user-0 (disassociated), into user-1; user-2 is deleted.
    fresh = store.get_collection("c")
    out = store.disassociate_faces(fresh, "user-0", [faces[0].face_id])
    search.users_changed(out.change)
    associate(store, search, collection, "user-1", [faces[0].face_id])
    gone = store.delete_user(store.get_collection("c"), "user-2")
    search.users_changed(gone.change)
    for probe in [faces[0].embedding, faces[10].embedding, *probes]:
        got = user_answer(search, store, collection, probe, 10, -1.0)
        want = users_brute_force(store, collection, probe, 10, -1.0)
        assert [u for u, _ in got] == [u for u, _ in want]
        assert "user-2" not in [u for u, _ in got]
    # SearchUsers by a user: its own centroid as the query, itself left out.
    got = user_answer(search, store, collection, faces[6].embedding, 3, -1.0, exclude="user-1")
    assert "user-1" not in [u for u, _ in got]


@_only_indexed()
def test_a_stale_user_centroid_is_scored_from_the_store(store, indexed):
    rng = np.random.default_rng(21)
    collection, faces = gallery(store, indexed, rng, images=3)
    associate(store, indexed, collection, "ann", [faces[0].face_id])
    # A second association whose notice was lost (the process died after the store's write).
    fresh = store.get_collection("c")
    store.associate_faces(fresh, "ann", [faces[1].face_id], 0.0, accept_all)
    probe = faces[1].embedding
    want = users_brute_force(store, collection, probe, 1, -1.0)
    assert same_users(user_answer(indexed, store, collection, probe, 1, -1.0), want)
    stored = indexed._user_vectors(store.get_collection("c"), ["ann"])
    assert stored["ann"][1] == 1  # a search only reads: the entry waits for ann's next write
    associate(store, indexed, collection, "ann", [faces[2].face_id])
    assert indexed._user_vectors(store.get_collection("c"), ["ann"])["ann"][1] == 3


@_only_indexed()
def test_rebuild_users_and_move_restore_everything(store, indexed, tmp_path):
    from rekface.search.move import move_collection

    rng = np.random.default_rng(22)
    collection = store.create_collection("old")
    faces = []
    for i in range(9):  # faces indexed before this backend existed (the in-memory era)
        batch = image_faces(collection, 5, rng, name=f"old-{i}")
        store.add_faces(collection, batch)
        faces += batch
    fresh = store.get_collection("old")
    store.create_user(fresh, "bob")
    store.associate_faces(fresh, "bob", [faces[0].face_id, faces[7].face_id], 0.0, accept_all)
    seen = []
    moved = move_collection(
        store, indexed, "old", tmp_path / "ck.json", batch=10, progress=lambda a, b: seen.append(a)
    )
    assert moved.done and moved.moved == 45 and seen[-1] == 45
    probe = faces[7].embedding
    assert answer(indexed, store, fresh, probe, 50, -1.0) == brute_force(
        store, fresh, probe, 50, -1.0
    )
    assert same_users(
        user_answer(indexed, store, fresh, probe, 5, -1.0),
        users_brute_force(store, fresh, probe, 5, -1.0),
    )
    assert indexed._face_users(fresh, [faces[0].face_id]) == {faces[0].face_id: "bob"}


@_only_indexed()
def test_an_interrupted_move_resumes_where_it_stopped(store, indexed, tmp_path, monkeypatch):
    from rekface.search.move import Checkpoint, move_collection

    rng = np.random.default_rng(23)
    collection = store.create_collection("big")
    faces = []
    for i in range(10):
        batch = image_faces(collection, 7, rng, name=f"big-{i}")
        store.add_faces(collection, batch)
        faces += batch
    checkpoint = tmp_path / "moves" / "big.json"
    written: list[int] = []
    real_put = type(indexed).put_faces

    def put(self, collection, batch):
        if len(written) == 3:
            raise KeyboardInterrupt  # Ctrl-C (or a crash) during the 4th batch
        written.append(len(batch))
        real_put(self, collection, batch)

    monkeypatch.setattr(type(indexed), "put_faces", put)
    with pytest.raises(KeyboardInterrupt):
        move_collection(store, indexed, "big", checkpoint, batch=10)
    state = Checkpoint.read(checkpoint, store.get_collection("big"))
    assert state.moved == 30 and not state.done and state.next_token
    monkeypatch.setattr(type(indexed), "put_faces", real_put)
    calls = []
    monkeypatch.setattr(
        type(indexed),
        "put_faces",
        lambda self, c, b: (calls.append(len(b)), real_put(self, c, b)),
    )
    done = move_collection(store, indexed, "big", checkpoint, batch=10)
    assert done.done and done.moved == 70
    assert calls == [10, 10, 10, 10]  # only the 40 faces not moved before
    fresh = store.get_collection("big")
    probe = faces[40].embedding
    assert answer(indexed, store, fresh, probe, 70, -1.0) == brute_force(
        store, fresh, probe, 70, -1.0
    )


@pytest.mark.parametrize("kind", ["pgvector"], indirect=True)
def test_pgvector_plans_follow_the_path_whatever_ran_before(store, indexed):
    """A search sets the session's planner settings only when they change, so they outlive it on
    the pooled connection: the exact scan after a graph walk must still scan the table (not the
    primary key, not the graph), and a graph walk after it must walk the HNSW graph, for faces
    and users' centroids alike; and each search is one statement once they are set."""
    from rekface.search import pg_schema
    from rekface.search.pgvector import nearest_sql

    rng = np.random.default_rng(19)
    collection, faces = gallery(store, indexed, rng, images=1, name="plans")
    indexed._put_users(collection, [("u1", faces[0].embedding, 1)])
    params = {"query": faces[0].embedding, "k": 96, "max_distance": 2.0}
    tables = (
        (pg_schema.partition_name(collection.incarnation), "face_id", "embedding"),
        (pg_schema.users_partition_name(collection.incarnation), "user_id", "centroid"),
    )
    with indexed.pool.connection() as conn:
        for exact in (False, True, False, True):
            indexed.pool.configure(conn, indexed._settings(exact, 96))
            for table, key, column in tables:
                sql = "EXPLAIN " + nearest_sql(table, key, column, exact)
                plan = "\n".join(row[0] for row in conn.execute(sql, params).fetchall())
                assert ("Seq Scan" in plan) == exact, plan
                assert ("hnsw" in plan or "_idx" in plan) == (not exact), plan
                assert "pkey" not in plan, plan
        # Settings sent once per change, in one statement; none when they are as wanted.
        sent: list[str] = []
        real_execute = conn.execute
        conn.execute = lambda sql, *a, **kw: sent.append(sql) or real_execute(sql, *a, **kw)
        try:
            for exact in (False, False, True, True, False):
                indexed.pool.configure(conn, indexed._settings(exact, 96))
        finally:
            del conn.execute
    assert len(sent) == 3 and all(sql.startswith("SELECT set_config(") for sql in sent)
