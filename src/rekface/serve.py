"""`rekface serve`: options, the rules for where it may listen, and running until SIGTERM.

- With ``--credentials FILE`` every API request must be SigV4-signed by a key of FILE (and pass
  its policy). Without it the server is open, which is allowed **only on a loopback address**;
  elsewhere it refuses to start unless ``--allow-anonymous`` says that is meant.
- ``/metrics`` names collections: on the API's listener only when the API itself is anonymous;
  with credentials, on ``--metrics-address`` (loopback unless ``--allow-anonymous``).
- SIGTERM / SIGINT: stop accepting, finish the requests already received (up to 30 s), exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from rekface.settings import ServeSettings, Settings

log = logging.getLogger("rekface.serve")
GRACE_SECONDS = 30.0


class _RawFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def add_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="AWS shared-credentials file of the callers (REKFACE_CREDENTIALS): every request "
        "must then be SigV4-signed by one of its keys; a section's policy_file limits it",
    )
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        default=None,
        help="serve without credentials on a non-loopback address (REKFACE_ALLOW_ANONYMOUS=1)",
    )
    serve.add_argument(
        "--metrics-address",
        default=None,
        metavar="HOST:PORT",
        help="a separate listener for GET /metrics, [HOST:]PORT, host 127.0.0.1 by default "
        "(REKFACE_METRICS_ADDRESS); with --credentials, the only place /metrics is served",
    )
    serve.add_argument(
        "--max-inflight",
        type=int,
        default=None,
        help="image operations at work at once (REKFACE_MAX_INFLIGHT; default one per core)",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=None,
        help="image operations waiting for a turn; beyond, ThrottlingException "
        "(REKFACE_MAX_QUEUE; default twice --max-inflight)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="open connections at most (REKFACE_MAX_CONNECTIONS; default 1000, less if the "
        "file-descriptor limit requires); at the cap, idle connections are closed first",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="seconds before an idle connection is closed (REKFACE_IDLE_TIMEOUT; default 60)",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        help="seconds for a request's headers and body to arrive (REKFACE_REQUEST_TIMEOUT; "
        "default 60)",
    )
    serve.add_argument(
        "--no-access-log", action="store_true", help="no JSON line per request on stderr"
    )


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    options = ServeSettings.from_env()
    flags = {
        "credentials": args.credentials,
        "allow_anonymous": args.allow_anonymous,
        "metrics_address": args.metrics_address,
        "max_inflight": args.max_inflight,
        "max_queue": args.max_queue,
        "max_connections": args.max_connections,
        "idle_timeout": args.idle_timeout,
        "request_timeout": args.request_timeout,
    }
    return replace(options, **{k: v for k, v in flags.items() if v is not None})


def listen_rule(host: str, options: ServeSettings) -> str | None:
    """Why serving on ``host`` with ``options`` is refused, or None if it is allowed."""
    from rekface.adapters.server import is_loopback

    if options.credentials is None and not options.allow_anonymous and not is_loopback(host):
        return (
            f"refusing to serve without credentials on {host}, which is not a loopback "
            "address: give --credentials FILE, or --allow-anonymous if anyone who can reach "
            "it may use it"
        )
    if options.metrics_address:
        metrics_host, _ = metrics_listener(options.metrics_address)
        if not options.allow_anonymous and not is_loopback(metrics_host):
            return (
                f"refusing to serve /metrics on {options.metrics_address}, which is not a "
                "loopback address (metrics name collections): use a loopback address, or "
                "--allow-anonymous"
            )
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _access_log(enabled=not args.no_access_log)
    try:
        options = serve_settings(args)
    except ValueError as exc:
        print(f"rekface: {exc}", file=sys.stderr)
        return 2
    refusal = listen_rule(args.host, options)
    if refusal:
        print(f"rekface: {refusal}", file=sys.stderr)
        return 2
    authority = None
    if options.credentials is not None:
        from rekface.adapters.credentials import Authority, CredentialsError, load_users

        try:
            users = load_users(options.credentials)
        except CredentialsError as exc:
            print(f"rekface: {exc}", file=sys.stderr)
            return 2
        authority = Authority(users, settings.region, settings.account_id)

    from rekface.adapters.bootstrap import build_context
    from rekface.adapters.server import create_server
    from rekface.engine.models import ModelLoadError

    try:
        ctx = build_context(settings)
    except RuntimeError as exc:
        # A store file of another schema version, a search backend without its settings
        # (--pg-dsn, --vector-bucket), its package or a reachable engine.
        print(f"rekface: {exc}", file=sys.stderr)
        return 2
    try:
        ctx.engine.warm_up()  # fail now, with the model's name, rather than on the first request
    except ModelLoadError as exc:
        print(f"rekface: {exc}", file=sys.stderr)
        return 1
    separate_metrics = bool(options.metrics_address)
    try:
        server = create_server(
            ctx,
            args.host,
            args.port,
            authority=authority,
            options=options,
            metrics_on_api_listener=authority is None and not separate_metrics,
        )
        if separate_metrics:
            _serve_metrics(server, options.metrics_address)
    except OSError as exc:
        print(f"rekface: cannot listen: {exc}", file=sys.stderr)
        return 1
    host, port = server.server_address
    mode = "SigV4 credentials required" if authority else "anonymous"
    print(f"rekface listening on http://{host}:{port} ({mode})", flush=True)
    _stop_on_signals(server)
    try:
        server.run()
    finally:
        server.server_close()
    return 0


def _access_log(enabled: bool) -> None:
    access = logging.getLogger("rekface.access")
    access.propagate = False
    if enabled:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_RawFormatter())
        access.addHandler(handler)
        access.setLevel(logging.INFO)
    else:
        access.setLevel(logging.CRITICAL + 1)


def metrics_listener(address: str) -> tuple[str, str]:
    """``[HOST:]PORT`` as (host, port); the host is 127.0.0.1 when left out."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", port


def _serve_metrics(server, address: str) -> None:
    """/metrics on its own listener (prometheus_client's server, one thread per scrape)."""
    from prometheus_client import start_http_server

    host, port = metrics_listener(address)
    if not port.isdigit():
        raise OSError(f"--metrics-address must be [HOST:]PORT, got {address!r}")
    start_http_server(int(port), addr=host, registry=server.app.metrics.registry)


def _stop_on_signals(server) -> None:
    """SIGTERM/SIGINT: drain in a thread (the loop must keep running to finish requests)."""
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.warning("signal %d: no new connections; finishing requests in progress", signum)
        threading.Thread(
            target=server.shutdown, kwargs={"grace": GRACE_SECONDS}, daemon=True
        ).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
