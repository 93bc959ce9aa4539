#!/usr/bin/env bash
# `make test-cluster`: the image (when Docker can run here), then tests/cluster against PostgreSQL,
# three `rekface serve` and nginx, all on 127.0.0.1. Bounded in time (CLUSTER_TIMEOUT seconds for
# the tests, after the build); everything it starts is stopped on exit, whatever happens: the
# pytest session stops its cluster (servers, containers, nginx, PostgreSQL), and the Docker daemon
# is stopped only if this script's `start` started it (tools/docker/dockerd.sh leases).
#
#   REKFACE_CLUSTER_DOCKER=0   plain processes, no image (also the fallback when dockerd cannot run)
#   REKFACE_CLUSTER_SECONDS    the write load's duration (default 60)
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=.venv/bin
IMAGE_TAG=${IMAGE_TAG:-rekface-cluster-rekface:test}
CLUSTER_TIMEOUT=${CLUSTER_TIMEOUT:-600}
export REKFACE_DOCKERD_OWNER=test-cluster
started=$(date +%s)

# Debian's nginx (the balancer) and docker-compose (only to validate compose.yaml).
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
    echo "test-cluster: installing ${missing[*]} from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    }
fi

image=""
if [ "${REKFACE_CLUSTER_DOCKER:-1}" != 0 ]; then
    if tools/docker/dockerd.sh start; then
        trap 'tools/docker/dockerd.sh stop || true' EXIT
        make --no-print-directory image IMAGE_TAG="$IMAGE_TAG"
        image=$IMAGE_TAG
        echo "test-cluster: image built in $(($(date +%s) - started)) s" >&2
    else
        echo "test-cluster: no Docker daemon here: the servers run as plain processes" >&2
    fi
fi

status=0
REKFACE_CLUSTER=1 REKFACE_CLUSTER_IMAGE=$image timeout --signal=TERM --kill-after=60 \
    "$CLUSTER_TIMEOUT" "$BIN/python" -m pytest tests/cluster -q -x -s -p no:cacheprovider \
    || status=$?
echo "test-cluster: $(($(date +%s) - started)) s in all (exit $status)" >&2
exit $status
