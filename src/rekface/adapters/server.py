"""`rekface serve`'s HTTP server: waitress, with bounded connections, timeouts and a graceful stop.

Why waitress (measured in docs/serve-hardening.md against the standard library's server):
connections are read by one asynchronous loop and only complete requests reach the fixed pool of
worker threads, so idle, slow (slowloris) and stalled-body connections cost a socket and a small
buffer, not a thread; bodies over 512 KB spill to a temporary file instead of memory; it caps
connections and stops accepting (instead of spinning) at the cap; pure Python, maintained, no C
extension to build on Lambda-like or slim images.

Added here, because waitress has no such setting: a deadline for a whole request to arrive
(headers and body), so a client dribbling one byte a minute is closed like an idle one; the cap
on connections lowered to what the process's file-descriptor limit allows; and a stop on SIGTERM
that stops accepting, lets the requests already received finish, then exits.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time
from dataclasses import dataclass

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from rekface.adapters.admission import Gate
from rekface.adapters.credentials import Authority
from rekface.adapters.dispatch import Dispatcher
from rekface.adapters.http_app import MAX_BODY, Gates, RekfaceApp
from rekface.operations.context import Context
from rekface.settings import ServeSettings

log = logging.getLogger("rekface.server")

_FD_MARGIN = 32  # descriptors kept free for files, the store, logs and S3 clients


@dataclass(frozen=True)
class Limits:
    max_connections: int = 1000
    idle_timeout: float = 60.0  # a keep-alive connection with no request
    request_timeout: float = 60.0  # for all of a request's headers and body to arrive
    threads: int = 8
    backlog: int = 1024


class _Channel(HTTPChannel):
    """Remembers when the request being received started, for the request deadline."""

    request_started = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.time()
        return super().received(data)


class RekfaceServer(TcpWSGIServer):
    channel_class = _Channel
    request_timeout = 60.0
    app: RekfaceApp  # ours (waitress may wrap it in middleware as self.application)

    def readable(self) -> bool:
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self._make_room(time.time())
        return super().readable()

    def _make_room(self, now: float) -> None:
        """At the connection cap, close connections that hold a slot without using it (idle
        keep-alives first, then requests still arriving after a second, oldest first), so new
        clients are served instead of waiting for the timeouts. A connection whose request is
        being answered is never closed. Clients reconnect, as they do for any keep-alive
        connection the server closes."""
        channels = [ch for ch in self.active_channels.values() if not ch.requests]
        closing = sum(1 for ch in channels if ch.will_close)
        wanted = max(1, self.adj.connection_limit // 10) - closing
        if wanted <= 0:
            return
        # A connection accepted a moment ago has had no time to send its request: it is the
        # client this room is being made for, not a candidate.
        open_ = [
            ch
            for ch in channels
            if not ch.will_close and not ch.total_outbufs_len and now - ch.creation_time > 1.0
        ]
        idle = sorted((ch for ch in open_ if ch.request is None), key=lambda c: c.last_activity)
        slow = sorted(
            (ch for ch in open_ if ch.request is not None and now - ch.request_started > 1.0),
            key=lambda c: c.request_started,
        )
        for channel in (idle + slow)[:wanted]:
            channel.will_close = True

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle keep-alive connections (channel_timeout)
        cutoff = now - self.request_timeout
        for channel in list(self.active_channels.values()):
            if channel.request is not None and channel.request_started < cutoff:
                channel.will_close = True

    @property
    def server_address(self) -> tuple[str, int]:
        return self.effective_host, self.effective_port

    def stop_accepting(self) -> None:
        """Close the listening socket: new connections are refused, open ones are served."""
        if self.accepting:
            self.accepting = False
            self.del_channel()
            self.socket.close()

    def busy(self) -> bool:
        return self.app.active > 0 or any(
            ch.requests or ch.total_outbufs_len for ch in list(self.active_channels.values())
        )

    def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting, wait (up to ``grace`` s) for the requests received, stop the loop."""
        self.pull_trigger_call(self.stop_accepting)
        deadline = time.monotonic() + grace
        time.sleep(0.05)
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pull_trigger_call(self._close_all)

    def pull_trigger_call(self, thunk) -> None:
        """Run ``thunk`` in the server's loop thread (waitress's objects are not thread-safe)."""
        done = threading.Event()

        def run() -> None:
            try:
                thunk()
            finally:
                done.set()

        self.trigger.pull_trigger(run)
        done.wait(5)

    def _close_all(self) -> None:
        for channel in list(self._map.values()):
            channel.close()

    def server_close(self) -> None:
        self.task_dispatcher.shutdown(timeout=5)


def connection_cap(wanted: int) -> int:
    """At most what the file-descriptor limit leaves (after the descriptors open now and a
    margin for files, the store and S3 clients), so accept() never fails with EMFILE: waitress
    stops accepting at its cap instead of spinning on a failing accept(). Each connection may
    hold two descriptors: its socket and the temporary file a body over 512 KB spills to."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    return max(4, min(wanted, (soft - in_use - _FD_MARGIN) // 2))


# Non-image operations (store reads/writes, searches by id: milliseconds each) at once, and waiting.
OTHER_INFLIGHT = 8
OTHER_QUEUE = 16
MAX_WAIT = 10.0  # seconds a queued request waits for a turn before ThrottlingException
_SPARE_THREADS = 4  # always free for /health, /metrics and quick refusals


def create_server(
    ctx: Context,
    host: str,
    port: int,
    *,
    authority: Authority | None = None,
    options: ServeSettings | None = None,
    metrics_on_api_listener: bool = True,
) -> RekfaceServer:
    """The server of ``ctx`` with the gates and limits of ``options``; call ``run()`` to serve."""
    options = options or ServeSettings()
    inflight = options.max_inflight or os.cpu_count() or 1
    queue = 2 * inflight if options.max_queue < 0 else options.max_queue
    gates = Gates(
        images=Gate("images", inflight, queue, MAX_WAIT),
        other=Gate("other", OTHER_INFLIGHT, OTHER_QUEUE, MAX_WAIT),
    )
    app = RekfaceApp(Dispatcher(ctx), gates, authority, metrics_on_api_listener)
    limits = Limits(
        max_connections=options.max_connections,
        idle_timeout=options.idle_timeout,
        request_timeout=options.request_timeout,
        # A thread for every request a gate may hold, plus spares: a request is never stuck in
        # waitress's queue behind requests that only wait for a gate.
        threads=sum(g.in_use() for g in gates) + _SPARE_THREADS,
    )
    return make_server(app, host, port, limits)


def make_server(
    app: RekfaceApp, host: str, port: int, limits: Limits | None = None
) -> RekfaceServer:
    limits = limits or Limits()
    server = RekfaceServer(
        app,
        host=host,
        port=port,
        threads=limits.threads,
        connection_limit=connection_cap(limits.max_connections),
        channel_timeout=int(max(1, limits.idle_timeout)),
        cleanup_interval=1,
        backlog=limits.backlog,
        # Twice the API's cap: a larger body is refused by waitress with 413 before it is read;
        # a body up to this is buffered (on disk past 512 KB) and refused by the application with
        # the service's ImageTooLargeException.
        max_request_body_size=2 * MAX_BODY,
        # Responses (at most a few MB: 100 faces with every attribute) stay in memory, so a
        # connection never needs a third descriptor for a spilled response.
        outbuf_overflow=4 * 1024 * 1024,
        ident="rekface",
        expose_tracebacks=False,
        log_socket_errors=False,
    )
    server.request_timeout = limits.request_timeout
    server.app = app
    return server


def serve_in_thread(server: RekfaceServer) -> threading.Thread:
    thread = threading.Thread(target=server.run, name="rekface-server", daemon=True)
    thread.start()
    return thread


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    import ipaddress

    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)
