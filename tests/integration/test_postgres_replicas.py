"""Three `rekface serve --store postgres` processes on one PostgreSQL (a live pgserver), on
127.0.0.1, taking IndexFaces, DeleteFaces and AssociateFaces on one collection from client threads
at the same time, each call sent to any of them, for a bounded time. Then, through the servers and
under them in the database: FaceCount equals what ListFaces lists equals the rows, every
acknowledged FaceId is there (and every acknowledged deletion is not), the users' face counts
equal their faces; a ListFaces token of one process pages on another; a search on one process
finds a face indexed through another (its in-memory cache follows the collection version).

The servers are plain processes of this venv (the container image's cluster test is
tests/cluster). They are started and stopped here, by process id, and never outlive the test.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from live_server import client_for

from benchmarks.shared_faces import image_bytes

REPO = Path(__file__).resolve().parents[2]
REPLICAS = 3
THREADS = 6
USERS = 2  # shared by the workers: AssociateFaces on one user from several processes at once
HAMMER_SECONDS = 20.0  # bounded: the workers stop by themselves after this
START_TIMEOUT = 240.0  # three processes loading models at once on a busy 2-core machine
# One photo per worker, each with one clear face; indexed again and again under new
# ExternalImageIds (a new ImageId, so new FaceIds, each time).
PHOTOS = [f"identities/Paul_Bremer/{n}.jpg" for n in range(1, THREADS + 1)]
PROBE = "identities/Barack_Obama/1.jpg"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Replica:
    """One `rekface serve` process; stopped (SIGTERM, then SIGKILL) by ``stop``."""

    def __init__(self, dsn: str, data_dir: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "REKFACE_TOKEN_SECRET"}
        # One inference thread per process (3 processes, 2 cores); no REKFACE_TOKEN_SECRET: the
        # replicas must agree on the secret the database keeps.
        env.update({"REKFACE_THREADS": "1", "PYTHONUNBUFFERED": "1"})
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rekface.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--store",
                "postgres",
                "--pg-dsn",
                dsn,
                "--data-dir",
                str(data_dir),
            ],
            cwd=REPO,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"rekface serve exited: {self.log.read_text()[-2000:]}")
            if _healthy(self.url):
                return
            time.sleep(0.5)
        raise AssertionError(f"rekface serve not healthy in time: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


@pytest.fixture
def replicas(live_postgres, tmp_path) -> Iterator[tuple[str, list[Replica]]]:
    dsn = live_postgres.new_database()
    servers: list[Replica] = []
    try:
        for i in range(REPLICAS):
            servers.append(Replica(dsn, tmp_path / f"data{i}", tmp_path / f"serve{i}.log"))
        deadline = time.monotonic() + START_TIMEOUT
        for server in servers:
            server.wait_healthy(deadline)
        yield dsn, servers
    finally:
        for server in servers:
            server.stop()


def _rows(dsn: str, collection_id: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM rekface_faces f JOIN rekface_collections c "
            "ON c.incarnation = f.incarnation WHERE c.collection_id = %s",
            (collection_id,),
        ).fetchone()[0]


def _user_rows(dsn: str, collection_id: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """The collection's UserCount, and per user: its recorded FaceCount and its faces' rows."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        (user_count,) = conn.execute(
            "SELECT user_count FROM rekface_collections WHERE collection_id = %s",
            (collection_id,),
        ).fetchone()
        rows = conn.execute(
            "SELECT u.user_id, u.face_count, (SELECT COUNT(*) FROM rekface_faces f "
            "WHERE f.incarnation = u.incarnation AND f.user_id = u.user_id) "
            "FROM rekface_users u JOIN rekface_collections c ON c.incarnation = u.incarnation "
            "WHERE c.collection_id = %s",
            (collection_id,),
        ).fetchall()
    return user_count, {user: (recorded, faces) for user, recorded, faces in rows}


def _list_faces(clients: list, collection_id: str) -> list[dict]:
    """Every face, each page asked of the next process with the previous one's token."""
    faces, token, i = [], None, 0
    while True:
        args = {"CollectionId": collection_id, "MaxResults": 7}
        if token:
            args["NextToken"] = token
        page = clients[i % len(clients)].list_faces(**args)
        faces += page["Faces"]
        token = page.get("NextToken")
        i += 1
        if not token:
            return faces


@pytest.mark.slow
def test_three_replicas_stay_consistent_under_concurrent_writes(replicas):
    dsn, servers = replicas
    clients = [client_for(s.url) for s in servers]
    cid = f"replicas-{uuid.uuid4().hex[:8]}"
    clients[0].create_collection(CollectionId=cid)
    photos = [image_bytes(p) for p in PHOTOS]

    lock = threading.Lock()
    acknowledged: set[str] = set()  # faces IndexFaces returned and no DeleteFaces removed since
    deleted: set[str] = set()  # faces a DeleteFaces reported deleted
    # user -> faces AssociateFaces reported associated
    members: dict[str, set[str]] = {f"user-{u}": set() for u in range(USERS)}
    for u, user in enumerate(members):
        clients[u % REPLICAS].create_user(CollectionId=cid, UserId=user)
    errors: list[BaseException] = []
    calls = {"index": 0, "delete": 0, "associate": 0}
    stop_at = time.monotonic() + HAMMER_SECONDS

    def worker(w: int) -> None:
        rng = random.Random(w)
        user = f"user-{w % USERS}"
        mine: list[str] = []  # this worker's faces in no user
        n = 0
        try:
            while time.monotonic() < stop_at:
                client = clients[rng.randrange(REPLICAS)]  # any process, as a balancer would
                roll = rng.random()
                if roll < 0.55 or len(mine) < 2:
                    n += 1
                    out = client.index_faces(
                        CollectionId=cid,
                        Image={"Bytes": photos[w]},
                        ExternalImageId=f"w{w}-{n}",
                        MaxFaces=1,
                    )
                    ids = [r["Face"]["FaceId"] for r in out["FaceRecords"]]
                    with lock:
                        acknowledged.update(ids)
                        calls["index"] += 1
                    mine += ids
                elif roll < 0.8:
                    # Two of this worker's faces, and one of another worker's (maybe in a user,
                    # maybe deleted already: the answer says which).
                    victims = rng.sample(mine, 2)
                    with lock:
                        other = rng.choice(sorted(acknowledged) or victims)
                    out = client.delete_faces(CollectionId=cid, FaceIds=[*victims, other])
                    with lock:
                        for f in out["DeletedFaces"]:
                            acknowledged.discard(f)
                            deleted.add(f)
                        calls["delete"] += 1
                    mine = [f for f in mine if f not in out["DeletedFaces"]]
                else:
                    with lock:
                        full = len(members[user]) >= 90  # a user holds 100 faces at most
                    if full:
                        continue
                    face = mine.pop(rng.randrange(len(mine)))
                    out = client.associate_faces(
                        CollectionId=cid, UserId=user, FaceIds=[face], UserMatchThreshold=0.0
                    )
                    with lock:
                        members[user].update(a["FaceId"] for a in out["AssociatedFaces"])
                        calls["associate"] += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HAMMER_SECONDS + 300)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors
    assert calls["index"] >= THREADS and calls["delete"] > 0 and calls["associate"] > 0, calls

    described = [c.describe_collection(CollectionId=cid)["FaceCount"] for c in clients]
    listed = _list_faces(clients, cid)
    listed_ids = [f["FaceId"] for f in listed]
    assert len(set(listed_ids)) == len(listed_ids)  # no face twice across the pages
    assert described == [len(listed)] * REPLICAS
    assert _rows(dsn, cid) == len(listed)
    assert set(listed_ids) == acknowledged  # every acknowledged face, and nothing else
    assert not deleted & set(listed_ids)
    by_user: dict[str, set[str]] = {}
    for f in listed:
        if "UserId" in f:
            by_user.setdefault(f["UserId"], set()).add(f["FaceId"])
    for user, faces in members.items():
        assert by_user.get(user, set()) == faces
    # Under the API: each user's recorded FaceCount is its faces' rows, UserCount its users.
    user_count, user_rows = _user_rows(dsn, cid)
    assert user_count == USERS
    assert user_rows == {user: (len(faces), len(faces)) for user, faces in members.items()}
    users = {
        u["UserId"]: u
        for c in clients[:1]
        for u in c.list_users(CollectionId=cid, MaxResults=500)["Users"]
    }
    assert set(users) == set(members)
    for user, faces in members.items():
        status = "ACTIVE" if faces else "CREATED"
        assert users[user]["UserStatus"] == status
        assert len(clients[2].list_faces(CollectionId=cid, UserId=user)["Faces"]) == len(faces)


def test_a_search_on_one_replica_sees_a_face_indexed_through_another(replicas):
    _, servers = replicas
    a, b, c = (client_for(s.url) for s in servers)
    cid = f"seen-{uuid.uuid4().hex[:8]}"
    a.create_collection(CollectionId=cid)
    a.index_faces(CollectionId=cid, Image={"Bytes": image_bytes(PHOTOS[0])}, MaxFaces=1)
    probe = {"Bytes": image_bytes(PROBE)}
    # B searches first: its cache now holds the collection at this version, without the probe.
    before = b.search_faces_by_image(CollectionId=cid, Image=probe, FaceMatchThreshold=90)
    assert before["FaceMatches"] == []
    added = a.index_faces(CollectionId=cid, Image=probe, MaxFaces=1)["FaceRecords"][0]["Face"]
    for client in (b, c):
        after = client.search_faces_by_image(CollectionId=cid, Image=probe, FaceMatchThreshold=90)
        assert [m["Face"]["FaceId"] for m in after["FaceMatches"]] == [added["FaceId"]]
    # A deletion through C is seen by B's next search too.
    c.delete_faces(CollectionId=cid, FaceIds=[added["FaceId"]])
    gone = b.search_faces_by_image(CollectionId=cid, Image=probe, FaceMatchThreshold=90)
    assert gone["FaceMatches"] == []
    # A ListFaces token of one process pages on another (one secret, kept in the database).
    a.index_faces(CollectionId=cid, Image={"Bytes": image_bytes(PHOTOS[1])}, MaxFaces=1)
    first = a.list_faces(CollectionId=cid, MaxResults=1)
    second = b.list_faces(CollectionId=cid, MaxResults=1, NextToken=first["NextToken"])
    assert len(first["Faces"]) == len(second["Faces"]) == 1
    assert first["Faces"][0]["FaceId"] < second["Faces"][0]["FaceId"]
    with pytest.raises(ClientError) as exc:  # and a token altered on the way is refused
        c.list_faces(CollectionId=cid, MaxResults=1, NextToken=first["NextToken"][:-2] + "xx")
    assert exc.value.response["Error"]["Code"] == "InvalidPaginationTokenException"
