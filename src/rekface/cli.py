"""The ``rekface`` command: ``rekface serve`` runs the API on localhost; ``rekface purge``
finishes interrupted collection deletions."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

DEFAULT_PORT = 8765


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rekface", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Rekognition face API on localhost")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the embedded store keeps collections (default ~/.rekface)",
    )
    serve.add_argument("--verbose", action="store_true", help="log every request")
    purge = sub.add_parser(
        "purge",
        help="finish deleting the items of collections whose DeleteCollection was interrupted "
        "(the store of REKFACE_STORE; deleted collections are already invisible)",
    )
    purge.add_argument("--data-dir", type=Path, default=None, help="the embedded store's dir")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "purge":
        return _purge(args)
    return 2  # pragma: no cover - argparse rejects other commands


def _purge(args: argparse.Namespace) -> int:
    from rekface.adapters.bootstrap import build_store
    from rekface.settings import Settings

    settings = Settings.from_env()
    if args.data_dir is not None:
        settings = replace(settings, data_dir=args.data_dir)
    finished = build_store(settings).resume_purges()
    print(f"rekface: {finished} interrupted collection deletion(s) finished")
    return 0


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from rekface.adapters.bootstrap import build_context
    from rekface.adapters.dispatch import Dispatcher
    from rekface.adapters.server import make_server
    from rekface.engine.models import ModelLoadError
    from rekface.settings import Settings

    settings = Settings.from_env()
    if args.data_dir is not None:
        settings = replace(settings, data_dir=args.data_dir)
    ctx = build_context(settings)
    try:
        ctx.engine.warm_up()  # fail now, with the model's name, rather than on the first request
    except ModelLoadError as exc:
        print(f"rekface: {exc}", file=sys.stderr)
        return 1
    try:
        server = make_server(Dispatcher(ctx), args.host, args.port)
    except OSError as exc:
        print(f"rekface: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    print(f"rekface listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
