#!/bin/sh
# The image's entry point (under tini): rekface serve on REKFACE_HOST:REKFACE_PORT, so that the
# HEALTHCHECK and the server read the port from one place. Extra arguments go to `rekface serve`
# (e.g. --store postgres --pg-dsn ..., --search pgvector); everything else is REKFACE_* variables.
# REKFACE_HOST defaults to 0.0.0.0: serve then refuses to start without REKFACE_CREDENTIALS (or an
# explicit REKFACE_ALLOW_ANONYMOUS=1).
set -eu
exec rekface serve --host "${REKFACE_HOST:-0.0.0.0}" --port "${REKFACE_PORT:-8765}" "$@"
