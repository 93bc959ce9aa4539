"""The container image itself (REKFACE_CLUSTER_IMAGE, built by `make image`): size, user, start-up
to /health, Docker's HEALTHCHECK, SIGTERM, and the refusal to serve anonymously off loopback.
Skipped when the cluster runs as plain processes (no Docker on this machine)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from benchmarks.shared_faces import image_bytes
from tests.cluster.harness import (
    CONTAINER_PREFIX,
    client,
    docker,
    free_port,
    healthy,
    wait_until,
)

IMAGE = os.environ.get("REKFACE_CLUSTER_IMAGE") or ""
pytestmark = pytest.mark.skipif(not IMAGE, reason="no image: the cluster runs as processes")


def run_detached(*args: str) -> str:
    name = f"{CONTAINER_PREFIX}{uuid.uuid4().hex[:8]}"
    docker("run", "--detach", "--name", name, "--network", "host", *args)
    return name


def test_image_size_and_user():
    size = int(docker("image", "inspect", "--format", "{{.Size}}", IMAGE, capture=True))
    print(f"\nimage {IMAGE}: {size / 1e6:.0f} MB")
    uid = docker("run", "--rm", "--network=none", "--entrypoint=id", IMAGE, "-u", capture=True)
    assert uid.strip() == "10001"


def test_the_default_command_refuses_to_serve_anonymously_on_every_address():
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", IMAGE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "credentials" in (result.stdout + result.stderr).lower()


def test_start_up_health_check_and_sigterm(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    name = run_detached(
        # A read-only root file system: the server writes nothing but /data.
        "--read-only", "--tmpfs", "/data:uid=10001",
        "-e", "REKFACE_HOST=127.0.0.1", "-e", f"REKFACE_PORT={port}",
        IMAGE,
    )  # fmt: skip
    try:
        wait_until(lambda: healthy(url), 120, name, interval=0.05)
        print(f"\ncontainer start to /health answering: {time.monotonic() - started:.2f} s")
        rekognition = client(url)
        rekognition.create_collection(CollectionId="read-only-root")
        indexed = rekognition.index_faces(
            CollectionId="read-only-root",
            Image={"Bytes": image_bytes("identities/Ann_Veneman/1.jpg")},
        )
        assert len(indexed["FaceRecords"]) == 1
        # Docker's own HEALTHCHECK (every 10 s) reports it healthy too.
        wait_until(
            lambda: (
                docker(
                    "inspect", "--format", "{{.State.Health.Status}}", name, capture=True
                ).strip()
                == "healthy"
            ),
            60,
            f"{name} healthy",
            interval=0.5,
        )
        docker("stop", "--time", "30", name)  # SIGTERM through tini; SIGKILL only after 30 s
        state = docker("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", name,
                       capture=True).split()  # fmt: skip
        assert state[0] != "137", "SIGTERM was not handled: Docker had to SIGKILL"
        assert state[1] == "false"
    finally:
        docker("rm", "--force", name)
