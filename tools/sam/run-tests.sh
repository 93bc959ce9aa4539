#!/usr/bin/env bash
# make test-sam: start Docker (if it is not running), build the stand-in Lambda image, run
# tests/sam (sam local invoke of every function, start-lambda + start-api with boto3), and stop
# everything this run started: the daemon (if it started it), leftover SAM containers, moto's
# server and the SAM servers (those are stopped by the tests' fixtures; the trap is the backstop).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
export REKFACE_DOCKERD_OWNER=test-sam-$$
start=$(date +%s)

cleanup() {
    local rc=$?
    # SAM removes its containers after each invocation; a killed run can leave some behind.
    # Only SAM's (label) and only those of images built from our stand-in (samcli/lambda-python).
    ids=$(docker ps -aq --filter label=sam.cli.container.type=lambda 2>/dev/null || true)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    tools/docker/dockerd.sh stop || true
    echo "test-sam: $(($(date +%s) - start)) s in all, exit $rc" >&2
    exit $rc
}
trap cleanup EXIT

tools/docker/dockerd.sh start
tools/sam/lambda-image.sh
[ -f infra/cdk.out/sam-local/Rekface.template.json ] || {
    echo "test-sam: no infra/cdk.out/sam-local: run make synth-local" >&2
    exit 1
}
# timeout: the whole run stays bounded even if a SAM process hangs (pytest's own teardown
# stops the servers it started).
REKFACE_SAM_TESTS=1 timeout --signal=INT --kill-after=60 1500 \
    .venv/bin/python -m pytest tests/sam -q -p no:randomly -p no:xdist -p no:cacheprovider "$@"
