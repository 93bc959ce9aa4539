"""Who may be served: anonymous serving is for loopback only (issue 18: `--host 0.0.0.0` used to
start without a word). Servers bound to 0.0.0.0 here are checked through 127.0.0.1 and the
kernel's socket table only: no traffic goes to any other address."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hardening_wire import ADMIN, client, send, write_credentials

from benchmarks.serve_process import SERVE_VARIABLES, free_port, serve_command

LIST_COLLECTIONS = {"X-Amz-Target": "RekognitionService.ListCollections"}


def listening_on_any_address(port: int) -> bool:
    """/proc/net/tcp has a LISTEN (0A) socket bound to 0.0.0.0:port."""
    wanted = f"00000000:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":
            return True
    return False


def test_anonymous_on_a_public_address_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SERVE_VARIABLES}
    port = free_port()
    proc = subprocess.Popen(
        [*serve_command(), "--host", "0.0.0.0", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("rekface serve --host 0.0.0.0 without credentials kept running")
    assert proc.returncode != 0
    reason = err.strip().splitlines()
    assert len(reason) == 1, err  # one line that says why, no traceback
    assert "0.0.0.0" in reason[0] and ("--credentials" in reason[0] or "anonymous" in reason[0])
    assert not listening_on_any_address(port)


def test_allow_anonymous_starts_on_a_public_address(serve):
    server = serve("--allow-anonymous", host="0.0.0.0")
    assert listening_on_any_address(server.port)
    assert send("GET", server.url + "/health", {}, b"").status == 200  # via 127.0.0.1


def test_the_allow_anonymous_variable_does_the_same(serve):
    server = serve(host="0.0.0.0", env={"REKFACE_ALLOW_ANONYMOUS": "1"})
    assert listening_on_any_address(server.port)


def test_credentials_start_on_a_public_address(serve, tmp_path):
    server = serve("--credentials", str(write_credentials(tmp_path)), host="0.0.0.0")
    assert listening_on_any_address(server.port)
    assert "CollectionIds" in client(server.url, ADMIN).list_collections()


def test_the_credentials_variable_does_the_same(serve, tmp_path):
    server = serve(host="0.0.0.0", env={"REKFACE_CREDENTIALS": str(write_credentials(tmp_path))})
    assert listening_on_any_address(server.port)
    reply = send("POST", server.url + "/", LIST_COLLECTIONS, b"{}")
    assert reply.status >= 400  # unsigned: refused


def test_loopback_stays_open_without_credentials(serve):
    """The local/CI default: no credentials, 127.0.0.1, any (or no) signature."""
    server = serve()
    reply = send("POST", server.url + "/", LIST_COLLECTIONS, b"{}")
    assert reply.status == 200, reply.body[:300]
