"""The user writes of the store contract, on SQLite and on DynamoDB (see conftest): the service's
rules, exact counts and versions, ClientRequestToken records that live in the store, a face in at
most one user and at most 100 faces per user under concurrency, and nothing half visible when a
write fails midway."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import any_score
from store_helpers import image_faces

from rekface.errors import (
    ConflictException,
    IdempotentParameterMismatchException,
    InvalidPaginationTokenException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ThrottlingException,
)
from rekface.search.memory import InMemoryExactSearch
from rekface.stores.records import FaceRecord, RequestToken

MISSING = "00000000-0000-4000-8000-000000000000"


def near(direction: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at ``cosine`` to the unit ``direction``."""
    other = rng.standard_normal(direction.shape).astype(np.float32)
    other -= (other @ direction) * direction
    other /= np.linalg.norm(other)
    v = cosine * direction + np.sqrt(1 - cosine**2) * other
    return (v / np.linalg.norm(v)).astype(np.float32)


def faces_of(collection, vectors, name: str) -> list[FaceRecord]:
    """Faces of one synthetic image with the given embeddings."""
    faces = image_faces(collection, len(vectors), np.random.default_rng(0), name)
    return [
        FaceRecord(f.face_id, f.image_id, None, f.box, f.confidence, None, v)
        for f, v in zip(faces, vectors, strict=True)
    ]


def indexed(store, collection, n: int, rng, prefix: str = "img", per_image: int = 20):
    """``n`` random faces stored in images of ``per_image``: their FaceIds."""
    ids: list[str] = []
    for i in range(0, n, per_image):
        faces = image_faces(collection, min(per_image, n - i), rng, f"{prefix}{i}")
        store.add_faces(collection, faces)
        ids += [f.face_id for f in faces]
    return ids


def token(op: str, tok: str, request: str) -> RequestToken:
    return RequestToken(op, tok, request)


def users_of(store, collection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for user in store.list_users(collection).items:
        out[user.user_id] = {
            f.face_id for f in store.list_faces(collection, user_id=user.user_id).items
        }
    return out


# ---------------------------------------------------------------------------------------------


def test_create_list_delete_users(backend):
    store = backend.store
    c = store.create_collection("c")
    ids = ["b", "a:1", "A.b-c_d", "z" * 128, "0", "m:m"]
    for uid in ids:
        result = store.create_user(c, uid)
        assert result.user.status == "CREATED" and result.user.face_count == 0
    with pytest.raises(ConflictException, match="a:1 already exists"):
        store.create_user(c, "a:1")
    assert store.get_collection("c").user_count == len(ids)
    assert store.get_collection("c").version == 0  # no face changed
    seen, token_, pages = [], None, 0
    while True:
        page = store.list_users(c, max_results=2, next_token=token_)
        seen += [u.user_id for u in page.items]
        assert all(u.status == "CREATED" for u in page.items)
        pages += 1
        token_ = page.next_token
        if token_ is None:
            break
    assert seen == sorted(ids) and pages == 3
    assert [u.user_id for u in store.list_users(c).items] == sorted(ids)
    # Tokens are bound to the operation and the collection's incarnation.
    listed = store.list_users(c, max_results=1).next_token
    faces_token = store.list_faces(c, max_results=1).next_token
    other = store.create_collection("other")
    for call in (
        lambda: store.list_users(other, next_token=listed),
        lambda: store.list_faces(c, next_token=listed),
        lambda: store.list_users(c, next_token=listed[:-1] + ("A" if listed[-1] != "A" else "B")),
    ):
        with pytest.raises(InvalidPaginationTokenException):
            call()
    assert faces_token is None  # (no faces: nothing to page)

    assert store.delete_user(c, "b").user is None
    assert store.get_user(c, "b") is None
    with pytest.raises(ResourceNotFoundException, match="user b does not exist"):
        store.delete_user(c, "b")
    assert store.get_collection("c").user_count == len(ids) - 1

    store.max_users_per_collection = len(ids)
    store.create_user(c, "b")  # back to the quota
    with pytest.raises(ServiceQuotaExceededException):
        store.create_user(c, "one-too-many")
    assert store.get_collection("c").user_count == len(ids)

    store.delete_collection("c")
    for call in (
        lambda: store.create_user(c, "x"),
        lambda: store.list_users(c),
        lambda: store.get_user(c, "a:1"),
    ):
        with pytest.raises(ResourceNotFoundException, match="collection id: c"):
            call()


def test_get_users_reads_many_in_one_call(backend):
    """What a search reads for its candidate users: the existing ones among many ids (more than
    one DynamoDB BatchGetItem), duplicates and unknown ids ignored."""
    store = backend.store
    c = store.create_collection("c")
    ids = [f"u{i:03d}" for i in range(130)]
    for uid in ids:
        store.create_user(c, uid)
    got = store.get_users(c, [*reversed(ids), "nobody", ids[0], ids[0]])
    assert sorted(got) == ids
    assert got["u007"] == store.get_user(c, "u007")
    assert store.get_users(c, []) == {} and store.get_users(c, ["nobody"]) == {}
    store.delete_collection("c")
    with pytest.raises(ResourceNotFoundException):
        store.get_users(c, ids[:3])


def test_associate_reasons_counts_and_versions(backend):
    store = backend.store
    rng = np.random.default_rng(1)
    c = store.create_collection("c")
    d = near(np.eye(128, dtype=np.float32)[0], 1.0, rng)
    vectors = [near(d, 0.95, rng), near(d, 0.95, rng), near(d, 0.9, rng), near(-d, 0.9, rng)]
    vectors.append(near(d, 0.95, rng))
    faces = faces_of(c, vectors, "people")
    store.add_faces(c, faces)
    a1, a2, a3, b1, a4 = (f.face_id for f in faces)
    bob = store.add_faces(c, image_faces(c, 1, rng, "bob")).added[0].face_id
    for uid in ("alice", "bob", "carol"):
        store.create_user(c, uid)
    store.associate_faces(c, "bob", [bob], 75.0, any_score)
    v0 = store.get_collection("c").version

    first = store.associate_faces(c, "alice", [a1, a2, a1], 75.0, any_score)
    assert first.changed == [a1, a2] and first.unsuccessful == []
    assert first.user.status == "ACTIVE" and first.user.face_count == 2
    assert first.change is not None and first.change.user_ids == {a1: "alice", a2: "alice"}
    assert store.get_collection("c").version == v0 + 1

    # Now faces are scored against the centroid of a1, a2: a3 is like them, b1 is not.
    expected = any_score(np.stack(vectors[:2]), np.stack(vectors[2:4]))
    assert expected[0] > 80 and expected[1] < 10
    second = store.associate_faces(c, "alice", [b1, a1, MISSING, bob, a3], 75.0, any_score)
    assert second.changed == [a3]
    reasons = [(u.face_id, u.reasons, u.user_id) for u in second.unsuccessful]
    assert reasons == [
        (b1, ["LOW_MATCH_CONFIDENCE"], "alice"),
        (MISSING, ["FACE_NOT_FOUND"], None),
        (bob, ["ASSOCIATED_TO_A_DIFFERENT_USER"], "bob"),
    ]  # in request order; a1 (already alice's) is in neither list
    assert second.unsuccessful[0].confidence == pytest.approx(float(expected[1]), abs=1e-3)
    assert second.user.face_count == 3
    # A user without faces takes every free face of the request, however unlike they are.
    carol = store.associate_faces(c, "carol", [b1, a4], 75.0, any_score)
    assert carol.changed == [b1, a4]
    now = store.get_collection("c")
    assert now.version == v0 + 3 and now.user_count == 3 and now.face_count == 6

    # Nothing to change: no write, no new version.
    nothing = store.associate_faces(c, "alice", [a1, MISSING], 75.0, any_score)
    assert nothing.changed == [] and nothing.change is None
    assert store.get_collection("c").version == v0 + 3

    assert users_of(store, c) == {"alice": {a1, a2, a3}, "bob": {bob}, "carol": {b1, a4}}
    assert store.get_faces(c, [a1])[a1].user_id == "alice"
    table, _ = store.load_faces(c)
    assert sorted(table.user_ids.tolist()) == ["alice"] * 3 + ["bob"] + ["carol"] * 2
    gone = store.delete_faces(store.get_collection("c"), [a1])
    assert gone.deleted == [] and gone.unsuccessful[0].reasons == ["ASSOCIATED_TO_AN_EXISTING_USER"]
    with pytest.raises(ResourceNotFoundException, match="user dave does not exist"):
        store.associate_faces(c, "dave", [a1], 75.0, any_score)


def test_disassociate_and_delete_user_keep_the_faces(backend):
    store = backend.store
    rng = np.random.default_rng(2)
    c = store.create_collection("c")
    ids = indexed(store, c, 6, rng)
    store.create_user(c, "alice")
    store.create_user(c, "bob")
    store.associate_faces(c, "alice", ids[:3], 0.0, any_score)
    store.associate_faces(c, "bob", ids[3:5], 0.0, any_score)
    v0 = store.get_collection("c").version

    out = store.disassociate_faces(c, "alice", [ids[0], ids[5], ids[3], MISSING, ids[0]])
    assert out.changed == [ids[0]]  # ids[5] is in no user: ignored
    assert [(u.face_id, u.reasons, u.user_id) for u in out.unsuccessful] == [
        (ids[3], ["ASSOCIATED_TO_A_DIFFERENT_USER"], "bob"),
        (MISSING, ["FACE_NOT_FOUND"], None),
    ]
    assert out.user.face_count == 2 and out.user.status == "ACTIVE"
    out = store.disassociate_faces(c, "alice", ids[1:3])
    assert out.user.face_count == 0 and out.user.status == "CREATED"
    assert store.get_collection("c").version == v0 + 2
    with pytest.raises(ResourceNotFoundException):
        store.disassociate_faces(c, "nobody", ids[:1])

    deleted = store.delete_user(c, "bob")
    assert sorted(deleted.changed) == sorted(ids[3:5])
    assert deleted.change.user_ids == {ids[3]: None, ids[4]: None}
    after = store.get_collection("c")
    assert after.user_count == 1 and after.face_count == 6 and after.version == v0 + 3
    assert all(f.user_id is None for f in store.get_faces(c, ids).values())
    assert store.delete_faces(after, ids[3:5]).deleted == ids[3:5]  # free now
    store.delete_user(c, "alice")  # no faces: no version change
    assert store.get_collection("c").version == v0 + 4  # (the DeleteFaces above)
    assert store.list_users(c).items == []


def test_a_user_holds_at_most_100_faces(backend):
    store = backend.store
    rng = np.random.default_rng(3)
    c = store.create_collection("c")
    ids = indexed(store, c, 104, rng)
    store.create_user(c, "u")
    store.associate_faces(c, "u", ids[:97], 0.0, any_score)
    with pytest.raises(ServiceQuotaExceededException, match="97 faces: 4 more"):
        store.associate_faces(c, "u", ids[97:101], 0.0, any_score)
    assert store.get_user(c, "u").face_count == 97  # the refused request changed nothing
    assert store.associate_faces(c, "u", ids[97:100], 0.0, any_score).user.face_count == 100
    # Faces already in the user are ignored even when it is full; a new one is refused.
    assert store.associate_faces(c, "u", ids[:5], 0.0, any_score).changed == []
    with pytest.raises(ServiceQuotaExceededException):
        store.associate_faces(c, "u", ids[100:101], 0.0, any_score)
    assert len(store.list_faces(c, user_id="u").items) == 100
    # A user of 100 faces is deleted whole (DynamoDB: more faces than one transaction holds).
    assert len(store.delete_user(c, "u").changed) == 100
    assert store.list_faces(c, user_id="u").items == []
    assert all(f.user_id is None for f in store.get_faces(c, ids).values())


def test_request_tokens_replay_refuse_and_outlive_the_process(backend):
    store = backend.store
    rng = np.random.default_rng(4)
    c = store.create_collection("c")
    ids = indexed(store, c, 4, rng)
    t1 = token("CreateUser", "tok-1", "alice")
    store.create_user(c, "alice", t1)
    again = store.create_user(c, "alice", t1)  # the user exists, but this is the same request
    assert again.replayed and again.user.user_id == "alice"
    with pytest.raises(IdempotentParameterMismatchException, match="tok-1"):
        store.create_user(c, "bob", token("CreateUser", "tok-1", "bob"))
    assert store.get_collection("c").user_count == 1
    # Tokens are per operation: the same string for AssociateFaces is another token.
    ta = token("AssociateFaces", "tok-1", "alice:" + ",".join(ids[:2]))
    first = store.associate_faces(c, "alice", ids[:2], 0.0, any_score, ta)
    version = store.get_collection("c").version
    # A second process (a restarted server, another Lambda) answers from the store.
    other = backend.new_store()
    replay = other.associate_faces(c, "alice", ids[:2], 0.0, any_score, ta)
    assert replay.replayed and replay.change is None
    assert (replay.user, replay.changed, replay.unsuccessful) == (
        first.user,
        first.changed,
        first.unsuccessful,
    )
    assert store.get_collection("c").version == version  # not done twice
    with pytest.raises(IdempotentParameterMismatchException):
        other.associate_faces(c, "alice", ids[2:], 0.0, any_score, replace_digest(ta, "other"))
    td = token("DeleteUser", "tok-2", "alice")
    store.delete_user(c, "alice", td)
    assert store.delete_user(c, "alice", td).replayed  # not ResourceNotFoundException
    with pytest.raises(ResourceNotFoundException):
        store.delete_user(c, "alice", token("DeleteUser", "tok-3", "alice"))
    # An expired record is forgotten: the token then names a new request.
    store.request_token_ttl = -1.0
    store.create_user(c, "carol", token("CreateUser", "tok-4", "carol"))
    store.create_user(c, "dave", token("CreateUser", "tok-4", "dave"))
    # A collection re-created under the same id has none of the old tokens.
    store.request_token_ttl = 3600.0
    store.delete_collection("c")
    fresh = store.create_collection("c")
    assert not store.create_user(fresh, "bob", token("CreateUser", "tok-1", "bob")).replayed
    assert backend.raw_items(c.incarnation) == 0  # tokens, users, faces: purged


def replace_digest(t: RequestToken, digest: str) -> RequestToken:
    return RequestToken(t.operation, t.token, digest)


def test_concurrent_associations_never_overfill_a_user_or_share_a_face(backend):
    store = backend.store
    store.max_faces_per_user = 20  # (the 100 of the service, lowered to keep the test small)
    rng = np.random.default_rng(5)
    c = store.create_collection("busy")
    ids = indexed(store, c, 40, rng)
    for u in ("u1", "u2", "u3"):
        store.create_user(c, u)
    pick = random.Random(0)
    # u1 is asked for faces 0..27 (overlapping windows, so that several requests race for the
    # same face) and u2, u3 for faces 24..39: u1 can get at least 24 faces of the 28, more than
    # a user may hold, so some requests must be refused.
    jobs = [("u1", ids[i : i + 6]) for i in range(0, 23, 3)]
    jobs += [(pick.choice(["u2", "u3"]), pick.sample(ids[24:], 5)) for _ in range(4)]
    jobs += [("out:u2", pick.sample(ids[24:], 4)) for _ in range(2)]  # racing the others
    pick.shuffle(jobs)

    def run(job):
        user, faces = job
        try:
            if user.startswith("out:"):
                return store.disassociate_faces(c, user[4:], faces)
            return store.associate_faces(c, user, faces, 0.0, any_score)
        except ServiceQuotaExceededException:
            return None

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, jobs))
    members = users_of(store, c)
    everyone = [f for faces in members.values() for f in faces]
    assert len(everyone) == len(set(everyone))  # no face in two users
    for uid, faces in members.items():
        user = store.get_user(c, uid)
        assert user.face_count == len(faces) <= 20
        assert all(f.user_id == uid for f in store.get_faces(c, list(faces)).values())
    # u1 was asked for more than it can take: the limit was reached, requests were refused.
    assert any(r is None for r in results)
    # Every committed change is accounted for once: each write that changed faces bumped the
    # version once, and faces associated minus faces disassociated is what the users hold.
    written = [(job, r) for job, r in zip(jobs, results, strict=True) if r and r.changed]
    assert store.get_collection("busy").version == 2 + len(written)  # after 2 IndexFaces
    joined = sum(len(r.changed) for (user, _), r in written if not user.startswith("out:"))
    left = sum(len(r.changed) for (user, _), r in written if user.startswith("out:"))
    assert joined - left == len(everyone)


def test_user_writes_under_contention_do_not_throttle(backend):
    """8 threads writing the same user: every call completes (retries absorb the races)."""
    store = backend.store
    rng = np.random.default_rng(6)
    c = store.create_collection("hot")
    ids = indexed(store, c, 32, rng)
    store.create_user(c, "u")
    chunks = [ids[i : i + 4] for i in range(0, 32, 4)]
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda f: store.associate_faces(c, "u", f, 0.0, any_score), chunks))
    except ThrottlingException:  # pragma: no cover - the failure this test guards against
        pytest.fail("a user write gave up under contention")
    assert store.get_user(c, "u").face_count == 32


# ---------------------------------------------------------------------------------------------
# Failures midway, and the staged path


class Boom(RuntimeError):
    pass


def crash(*args, **kwargs):
    raise Boom()


def test_failure_midway_leaves_nothing_visible(backend, monkeypatch):
    """A write that fails before it commits changes nothing anyone can see; the retry succeeds
    whole. On DynamoDB (limit lowered to 6 actions) 9 faces take the staged path, and the crash
    comes after the faces are reserved, before the commit."""
    from rekface.stores import dynamodb_users

    if backend.transactional:
        store = backend.store
    else:
        store = backend.new_store(max_transaction_actions=6, staging_lease_seconds=0)
    rng = np.random.default_rng(7)
    c = store.create_collection("c")
    ids = indexed(store, c, 9, rng, per_image=3)
    store.create_user(c, "u")
    if backend.transactional:
        monkeypatch.setattr(f"{backend.module}.result_json", crash)
    else:
        real = store._transact

        def transact(actions):
            update = actions[0].get("Update", {})
            if update.get("Key", {}).get("SK", {}).get("S", "").startswith("user#"):
                raise Boom()  # the process dies before the user write commits
            return real(actions)

        monkeypatch.setattr(store, "_transact", transact)
        monkeypatch.setattr(dynamodb_users.DynamoUserWrites, "_abandon", crash)
    t = token("AssociateFaces", "t", "9 faces")
    with pytest.raises(Boom):
        store.associate_faces(c, "u", ids, 0.0, any_score, t)
    monkeypatch.undo()
    now = store.get_collection("c")
    assert now.version == 3  # the 3 IndexFaces
    assert store.get_user(c, "u").face_count == 0
    assert store.list_faces(c, user_id="u").items == []
    assert all(f.user_id is None for f in store.get_faces(c, ids).values())
    table, _ = store.load_faces(c)
    assert all(u is None for u in table.user_ids.tolist())
    # The retry (same token: nothing was recorded) settles what the crash left, then succeeds.
    result = store.associate_faces(c, "u", ids, 0.0, any_score, t)
    assert sorted(result.changed) == sorted(ids) and not result.replayed
    assert store.get_user(c, "u").face_count == 9
    assert {f.face_id for f in store.list_faces(c, user_id="u").items} == set(ids)
    assert store.get_collection("c").version == 4


def test_staged_write_is_visible_whole_before_its_roll_forward(backend, monkeypatch):
    """DynamoDB: a committed staged write whose roll-forward was cut short is already visible to
    every reader, and the next writer of its faces finishes it. SQLite has one path."""
    from rekface.stores import dynamodb_users

    store = backend.new_store(max_transaction_actions=6, staging_lease_seconds=0)
    rng = np.random.default_rng(8)
    c = store.create_collection("c")
    ids = indexed(store, c, 9, rng)
    store.create_user(c, "u")
    if backend.kind == "dynamodb":
        monkeypatch.setattr(dynamodb_users.DynamoUserWrites, "_roll_forward", crash)
    out = store.associate_faces(c, "u", ids, 0.0, any_score)  # answers: committed
    monkeypatch.undo()
    assert sorted(out.changed) == sorted(ids)
    if backend.kind == "dynamodb":
        assert sum("UserPending" in it for it in backend._scan()) == 9  # not rolled forward
    assert {f.face_id for f in store.list_faces(c, user_id="u").items} == set(ids)
    assert all(f.user_id == "u" for f in store.get_faces(c, ids).values())
    table, _ = store.load_faces(c)
    assert table.user_ids.tolist() == ["u"] * 9
    search = InMemoryExactSearch(store)
    (match,) = search.search_users(store.get_collection("c"), table.embeddings[0], 5, -1.0)
    assert match.user_id == "u"
    refused = store.delete_faces(store.get_collection("c"), ids[:1])
    assert refused.unsuccessful[0].reasons == ["ASSOCIATED_TO_AN_EXISTING_USER"]
    # Disassociating them all is staged too, and finishes the earlier write first.
    back = store.disassociate_faces(c, "u", ids)
    assert sorted(back.changed) == sorted(ids) and back.user.status == "CREATED"
    assert all(f.user_id is None for f in store.get_faces(c, ids).values())
    if backend.kind == "dynamodb":
        assert not any("UserPending" in it for it in backend._scan())
        assert not any(it["SK"]["S"].startswith("user#") for it in backend._scan())
    assert store.delete_faces(store.get_collection("c"), ids).deleted == ids


# ---------------------------------------------------------------------------------------------
# The search backend follows the user writes


def test_in_memory_user_vectors_follow_the_writes(backend):
    store = backend.store
    rng = np.random.default_rng(9)
    c = store.create_collection("c")
    ids = indexed(store, c, 6, rng)
    search = InMemoryExactSearch(store)
    table, _ = store.load_faces(c)
    assert search.search_users(store.get_collection("c"), table.embeddings[0], 5, -1.0) == []
    store.create_user(c, "a")
    store.create_user(c, "b")
    for uid, faces in (("a", ids[:3]), ("b", ids[3:5])):
        result = store.associate_faces(c, uid, faces, 0.0, any_score)
        search.users_changed(result.change)
    vectors = search.user_vectors(store.get_collection("c"))
    assert vectors.user_ids.tolist() == ["a", "b"] and vectors.face_counts.tolist() == [3, 2]
    embedding = {f.face_id: f.embedding for f in store.get_faces(c, ids, embeddings=True).values()}
    a_centroid = np.mean([embedding[f] for f in ids[:3]], axis=0)
    a_centroid /= np.linalg.norm(a_centroid)
    top = search.search_users(store.get_collection("c"), a_centroid, 5, -1.0)
    assert [m.user_id for m in top] == ["a", "b"] and top[0].cosine == pytest.approx(1.0, abs=1e-5)
    excluded = search.search_users(store.get_collection("c"), a_centroid, 5, -1.0, "a")
    assert [m.user_id for m in excluded] == ["b"]
    search.users_changed(store.delete_user(c, "a").change)
    top = search.search_users(store.get_collection("c"), a_centroid, 5, -1.0)
    assert [m.user_id for m in top] == ["b"]
    # SQLite and PostgreSQL report the versions they wrote: the cache follows in place, never
    # reloading. DynamoDB does not (other writers may interleave): the next search reloads.
    assert search.loads == (1 if backend.transactional else 3)
    # Another process's search sees the same users.
    other = InMemoryExactSearch(backend.new_store())
    assert [
        m.user_id for m in other.search_users(store.get_collection("c"), a_centroid, 5, -1.0)
    ] == ["b"]
