"""Connections that hold a server's resources without finishing a request (loopback only).

- ``idle``: connect, send nothing;
- ``slowloris``: a request line and headers that never end, one byte every ``dribble_every`` s
  (always more often than the server's idle timeout, so only a deadline on the whole header
  closes them);
- ``stalled-body``: complete headers announcing a 7.5 MiB body, 64 KiB of it, then nothing.

``run_attack`` opens them all, keeps them going and watches which ones the server closes (EOF or
reset) and when, for at most ``give_up_after`` s, then closes what is left itself. Nothing here
looks at time to pass or fail: the caller decides what the figures mean.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("idle", "slowloris", "stalled-body")
STALLED_BODY_BYTES = 7_864_320  # 7.5 MiB: a plausible base64 image, under the body cap
STALLED_SENT_BYTES = 64 * 1024


@dataclass
class AttackResult:
    kind: str
    count: int
    opened: int = 0  # TCP connections established
    not_opened: int = 0  # connect refused or timed out (a full backlog)
    answered: int = 0  # the server wrote something (e.g. a 408/400) before closing
    close_seconds: list[float] = field(default_factory=list)  # open -> closed by the server
    left_open: int = 0  # still open when we gave up
    open_after_during: int | None = None  # still open when ``during`` returned
    open_now: int = 0  # kept current while the attack runs (``during`` may read it)
    seconds: float = 0.0

    @property
    def closed(self) -> int:
        return len(self.close_seconds)

    @property
    def max_close_seconds(self) -> float | None:
        return max(self.close_seconds) if self.close_seconds else None


def _request_head(host: str, port: int, kind: str, body_sent: int) -> bytes:
    if kind == "idle":
        return b""
    if kind == "slowloris":
        # No blank line ever follows: the header section never ends.
        return f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nX-Slow: ".encode()
    return (
        (
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "X-Amz-Target: RekognitionService.DetectFaces\r\n"
            "Content-Type: application/x-amz-json-1.1\r\n"
            f"Content-Length: {STALLED_BODY_BYTES}\r\n\r\n"
        ).encode()
        + b'{"Image":{"Bytes":"'
        + b"A" * (body_sent - 19)
    )


def run_attack(
    host: str,
    port: int,
    kind: str,
    count: int,
    *,
    give_up_after: float,
    dribble_every: float = 1.0,
    connect_timeout: float = 5.0,
    body_sent: int = STALLED_SENT_BYTES,
    during: Callable[[], None] | None = None,
    result: AttackResult | None = None,
) -> AttackResult:
    """``during`` runs in a thread once every connection is open (e.g. a well-behaved client);
    the result tells how many bad connections were still open when it returned. Pass ``result``
    to watch ``result.open_now`` from ``during``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("slow-client attacks are for loopback servers only")
    result = result or AttackResult(kind, count)
    started = time.monotonic()
    opened_at: dict[socket.socket, float] = {}
    head = _request_head(host, port, kind, min(body_sent, STALLED_BODY_BYTES - 1))
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(connect_timeout)
        try:
            s.connect((host, port))
            if head:
                s.sendall(head)
        except OSError:
            s.close()
            result.not_opened += 1
            continue
        s.setblocking(False)
        opened_at[s] = time.monotonic()
    result.opened = result.open_now = len(opened_at)
    last_dribble = time.monotonic()
    answered: set[socket.socket] = set()
    watch = selectors.DefaultSelector()  # epoll: no FD_SETSIZE limit on descriptor numbers
    for s in opened_at:
        watch.register(s, selectors.EVENT_READ)

    def closed_by_server(s: socket.socket) -> None:
        result.close_seconds.append(time.monotonic() - opened_at.pop(s))
        result.open_now = len(opened_at)
        watch.unregister(s)
        s.close()

    helper = threading.Thread(target=during or (lambda: None), name="attack-during", daemon=True)
    helper.start()

    while (opened_at or helper.is_alive()) and time.monotonic() - started < give_up_after:
        if result.open_after_during is None and not helper.is_alive():
            result.open_after_during = len(opened_at)
        if not opened_at:
            helper.join(0.25)
            continue
        for key, _ in watch.select(0.25):
            s = key.fileobj  # type: ignore[assignment]
            try:
                data = s.recv(65536)
            except OSError:  # reset
                closed_by_server(s)
                continue
            if data:
                answered.add(s)
            else:
                closed_by_server(s)
        if kind == "slowloris" and time.monotonic() - last_dribble >= dribble_every:
            last_dribble = time.monotonic()
            for s in list(opened_at):
                try:
                    s.send(b"a")
                except BlockingIOError:
                    pass  # the server stopped reading: still open, not ours to count
                except OSError:
                    closed_by_server(s)
    helper.join(timeout=120)  # ``during`` bounds its own calls; never wait forever
    if result.open_after_during is None:
        result.open_after_during = len(opened_at)
    result.answered = len(answered)
    result.left_open = len(opened_at)
    for s in opened_at:
        s.close()
    result.open_now = 0
    watch.close()
    result.seconds = time.monotonic() - started
    return result
