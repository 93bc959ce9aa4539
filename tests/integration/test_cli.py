"""The README's commands: `rekface serve` as a process, and the AWS CLI against it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "rekface"),
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path_factory.mktemp("serve")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()  # printed once the models are loaded and the port is bound
    assert f"listening on http://127.0.0.1:{port}" in line, line
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def aws(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_PAGER": "",
    }
    return subprocess.run(
        [str(BIN / "aws"), "rekognition", *args, "--endpoint-url", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_aws_cli_compare_faces(served, faces_dir):
    out = aws(
        served,
        "compare-faces",
        "--source-image-bytes",
        f"fileb://{faces_dir}/identities/Paul_Bremer/12.jpg",
        "--target-image-bytes",
        f"fileb://{faces_dir}/identities/Paul_Bremer/5.jpg",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["FaceMatches"][0]["Similarity"] >= 80


def test_aws_cli_detect_faces_and_error(served, faces_dir):
    out = aws(
        served, "detect-faces", "--image-bytes", f"fileb://{faces_dir}/groups/dlib_2008_001009.jpg"
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["FaceDetails"]) == 2
    out = aws(
        served,
        "detect-faces",
        "--image-bytes",
        f"fileb://{faces_dir}/nofaces/skimage_grass.png",
        "--attributes",
        "WRONG",
    )
    assert out.returncode != 0 and "InvalidParameterException" in out.stderr


def test_serve_reports_a_missing_model(tmp_path):
    env = {**os.environ, "REKFACE_MODELS_DIR": str(tmp_path)}
    out = subprocess.run(
        [str(BIN / "rekface"), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 1
    assert "retinaface_mnet025.onnx" in out.stderr and "not found" in out.stderr


def test_aws_cli_users(served, faces_dir):
    """The flow of the AWS documentation's search-users-by-image page, with the AWS CLI."""
    person = f"{faces_dir}/identities/Barack_Obama"

    def ok(*args: str) -> dict:
        out = aws(served, *args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    ok("create-collection", "--collection-id", "cli-users")
    face = ok(
        "index-faces",
        "--collection-id",
        "cli-users",
        "--image-bytes",
        f"fileb://{person}/1.jpg",
    )["FaceRecords"][0]["Face"]["FaceId"]
    ok("create-user", "--collection-id", "cli-users", "--user-id", "obama")
    ok("associate-faces", "--collection-id", "cli-users", "--user-id", "obama", "--face-ids", face)
    found = ok(
        "search-users-by-image",
        "--collection-id",
        "cli-users",
        "--image-bytes",
        f"fileb://{person}/2.jpg",
    )
    assert found["UserMatches"][0]["User"] == {"UserId": "obama", "UserStatus": "ACTIVE"}
    out = aws(served, "create-user", "--collection-id", "cli-users", "--user-id", "obama")
    assert out.returncode != 0 and "ConflictException" in out.stderr
