#!/usr/bin/env bash
# Start or stop a local Docker daemon for rekface's container tests (make test-sam, the self-hosting
# image). Idempotent and shared: several callers may use one daemon at the same time.
#
#   tools/docker/dockerd.sh start   installs docker.io + debootstrap from Debian if missing; if
#                                   `docker info` already works, prints "already running" and does
#                                   nothing else; otherwise starts dockerd and waits until it answers.
#   tools/docker/dockerd.sh stop    unregisters the owner; stops the daemon only if this script
#                                   started it and no other owner is still registered (the last
#                                   user out stops it). A daemon started otherwise is never stopped.
#   tools/docker/dockerd.sh status  prints whether the daemon answers and who registered.
#
# REKFACE_DOCKERD_OWNER (default "default") names the caller: each `start` registers that owner,
# each `stop` removes it. The daemon never gets a bridge network (--bridge=none, --iptables=false):
# containers must run with --network host or --network none, and no private-range address is used.
# Storage driver overlay2, or vfs when overlay2 cannot start on this kernel/file system.
set -euo pipefail

STATE_DIR=${REKFACE_DOCKERD_STATE:-/tmp/rekface-dockerd}
OWNER=${REKFACE_DOCKERD_OWNER:-default}
LOG=$STATE_DIR/dockerd.log
PIDFILE=$STATE_DIR/dockerd.pid
STARTED_MARK=$STATE_DIR/started   # "owner pid time" of the start that launched dockerd
LEASES=$STATE_DIR/leases
WAIT_SECONDS=${REKFACE_DOCKERD_WAIT:-60}

log() { echo "dockerd.sh: $*" >&2; }

# Empty for root; sudo otherwise. An array, not a function: a backgrounded function runs in a
# subshell, and $! would then be that subshell's pid instead of dockerd's.
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
as_root() { "${SUDO[@]}" "$@"; }

# One start/stop at a time, whoever calls (make test-sam and the image build may run together).
lock() {
    mkdir -p "$STATE_DIR" "$LEASES"
    exec 9>"$STATE_DIR/lock"
    flock -w 300 9 || {
        log "timed out waiting for $STATE_DIR/lock"
        exit 1
    }
}

install_missing() {
    local pkgs=()
    command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || pkgs+=(debootstrap)
    if [ ${#pkgs[@]} -gt 0 ]; then
        log "installing ${pkgs[*]} from Debian"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${pkgs[@]}" >&2 || {
            as_root apt-get update -q >&2
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends "${pkgs[@]}" >&2
        }
    fi
}

answers() { docker info >/dev/null 2>&1; }

wait_answers() {
    local pid=$1 i
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
        answers && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}

launch() {
    local driver=$1
    log "starting dockerd (storage driver $driver), log in $LOG"
    echo "=== $(date -u +%FT%TZ) storage-driver=$driver" >>"$LOG"
    # setsid: the daemon outlives the caller's shell and its job control signals; 9>&- so that
    # the daemon does not inherit (and hold forever) the start/stop lock.
    "${SUDO[@]}" setsid dockerd --storage-driver="$driver" --bridge=none --iptables=false \
        --ip-masq=false --ip-forward=false >>"$LOG" 2>&1 </dev/null 9>&- &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    if wait_answers "$pid"; then
        return 0
    fi
    log "dockerd with $driver did not come up (see $LOG)"
    as_root kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    return 1
}

start() {
    lock
    install_missing
    touch "$LEASES/$OWNER"
    if answers; then
        echo "already running"
        return 0
    fi
    launch overlay2 || launch vfs || {
        rm -f "$LEASES/$OWNER"
        log "could not start dockerd"
        exit 1
    }
    echo "$OWNER $(cat "$PIDFILE") $(date -u +%FT%TZ)" >"$STARTED_MARK"
    echo "started (pid $(cat "$PIDFILE"))"
}

stop() {
    lock
    rm -f "$LEASES/$OWNER"
    if [ ! -f "$STARTED_MARK" ]; then
        echo "not started by this script: left alone"
        return 0
    fi
    local others
    others=$(ls -A "$LEASES")
    if [ -n "$others" ]; then
        echo "still used by: $(echo "$others" | tr '\n' ' ')- left running"
        return 0
    fi
    local pid
    pid=$(cut -d' ' -f2 "$STARTED_MARK")
    rm -f "$STARTED_MARK"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        as_root kill -TERM "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2>/dev/null && as_root kill -KILL "$pid"
    fi
    rm -f "$PIDFILE"
    echo "stopped (pid $pid)"
}

status() {
    if answers; then echo "running"; else echo "not running"; fi
    mkdir -p "$LEASES"
    echo "registered owners: $(ls -A "$LEASES" | tr '\n' ' ')"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
