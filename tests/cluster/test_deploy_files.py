"""The files a user deploys with, checked by the tools that read them: compose.yaml by
docker-compose (where installed) and deploy/nginx/compose.conf by nginx itself. (The included
rekface-server.conf and rekface-proxy.conf run for real in front of the cluster.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cluster.harness import DEPLOY_NGINX, REPO


def test_nginx_accepts_the_compose_balancer_config(tmp_path: Path):
    # The replicas' DNS name exists only inside compose's network: resolve it to loopback here.
    conf = (DEPLOY_NGINX / "compose.conf").read_text().replace("replica:8765", "127.0.0.1:8765")
    assert "127.0.0.1:8765" in conf
    (tmp_path / "compose.conf").write_text(conf)
    for name in ("rekface-server.conf", "rekface-proxy.conf"):
        shutil.copy(DEPLOY_NGINX / name, tmp_path / name)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{ include {tmp_path}/compose.conf; }}\n"
    )
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose is not installed")
@pytest.mark.parametrize("profile", ["single", "cluster"])
def test_compose_file_is_valid(profile: str, tmp_path: Path):
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO / "compose.yaml"), "--profile", profile, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"POSTGRES_PASSWORD": "x", "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert result.returncode == 0, result.stderr
    services = {"single": "rekface:", "cluster": "replica:"}[profile]
    assert services in result.stdout
