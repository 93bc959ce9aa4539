"""Real `rekface serve` processes on 127.0.0.1 for the attack tests of issue 18, started as users
start them (benchmarks/serve_process.py), and a moto S3 server on 127.0.0.1 for Image.S3Object.

Every process started here is stopped at teardown (SIGTERM, then SIGKILL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from hardening_wire import ALLOWED_BUCKET, FORBIDDEN_BUCKET, write_credentials

from benchmarks.serve_process import ServeProcess, start_serve

FACE_PHOTO = "identities/Paul_Bremer/5.jpg"  # read from ../shared/faces at run time


@pytest.fixture
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServeProcess]]:
    """serve(*args, env=None, data_dir=None, host="127.0.0.1") -> a started server; each gets a
    fresh data dir unless one is given."""
    started: list[ServeProcess] = []

    def start(*args: str, env=None, data_dir: Path | None = None, **options) -> ServeProcess:
        data_dir = data_dir or tmp_path_factory.mktemp("serve-data")
        server = start_serve(["--data-dir", str(data_dir), *args], env=env, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3(photo) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with the same face photo in an allowed and a forbidden
    bucket (the names the policies of hardening_wire use); its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    for bucket in (ALLOWED_BUCKET, FORBIDDEN_BUCKET):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="face.jpg", Body=photo(FACE_PHOTO))
    yield url
    server.stop()


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory, moto_s3: str) -> Iterator[ServeProcess]:
    """One server with `--credentials` (the users of hardening_wire.USERS), reading S3 from moto."""
    directory = tmp_path_factory.mktemp("authed")
    credentials = write_credentials(directory)
    server = start_serve(
        ["--data-dir", str(directory / "data"), "--credentials", str(credentials)],
        env={"AWS_ENDPOINT_URL_S3": moto_s3},
    )
    yield server
    server.stop()
