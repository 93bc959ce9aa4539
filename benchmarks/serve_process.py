"""A real `rekface serve` process on 127.0.0.1, for tests/hardening and benchmarks/serve_load.py.

The process runs exactly as a user starts it (its own interpreter, its own sockets and threads),
so what is measured from outside (/proc/<pid>: threads, open fds, RSS) is the server's alone.
Its output is drained by a thread: a server that logs a line per request would otherwise block
on a full pipe and look like a hung server.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"listening on (http://\S+)")
# Variables that change how serve authenticates or signs tokens: a test states them explicitly,
# so a developer's own shell settings never decide a test's outcome.
SERVE_VARIABLES = (
    "REKFACE_CREDENTIALS",
    "REKFACE_ALLOW_ANONYMOUS",
    "REKFACE_TOKEN_SECRET",
    "REKFACE_METRICS_ADDRESS",
    "REKFACE_MAX_INFLIGHT",
    "REKFACE_MAX_QUEUE",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(python: str = sys.executable) -> list[str]:
    """`rekface serve` of the package importable by ``python`` (PYTHONPATH picks another tree)."""
    return [python, "-m", "rekface.cli", "serve"]


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    url: str
    output: deque = field(default_factory=lambda: deque(maxlen=400))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def status(self, key: str) -> int:
        """A number of /proc/<pid>/status, e.g. Threads, VmRSS or VmHWM (kB)."""
        text = Path(f"/proc/{self.pid}/status").read_text()
        m = re.search(rf"^{key}:\s+(\d+)", text, re.M)
        if m is None:
            raise KeyError(key)
        return int(m.group(1))

    def threads(self) -> int:
        return self.status("Threads")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_mb(self) -> float:
        return self.status("VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        return self.status("VmHWM") / 1024

    def log(self) -> str:
        return "\n".join(self.output)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` s; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode


def start_serve(
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 180,
) -> ServeProcess:
    """Start ``rekface serve --host host --port port *args`` and wait for its "listening" line.

    ``env`` is added to a copy of this process's environment from which SERVE_VARIABLES were
    removed. Raises RuntimeError (with the output) if it exits or says nothing in ``timeout`` s.
    """
    port = free_port() if port is None else port
    full_env = {k: v for k, v in os.environ.items() if k not in SERVE_VARIABLES}
    full_env.update(env or {})
    argv = [*(command or serve_command()), "--host", host, "--port", str(port), *args]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env=full_env,
    )
    server = ServeProcess(proc, f"http://127.0.0.1:{port}")
    ready = threading.Event()
    listening: list[str] = []

    def drain() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            server.output.append(line.rstrip("\n"))
            if not listening and _LISTENING.search(line):
                listening.append(line)
                ready.set()
        ready.set()  # exited: wake the waiter

    threading.Thread(target=drain, name=f"serve-{port}-output", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.2):
        if time.monotonic() > deadline:
            server.stop(timeout=5)
            raise RuntimeError(f"{argv} said nothing in {timeout} s:\n{server.log()}")
    if not listening:
        proc.wait(timeout=30)
        raise RuntimeError(f"{argv} exited with {proc.returncode}:\n{server.log()}")
    return server
