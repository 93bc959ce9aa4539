#!/usr/bin/env bash
# Build rekface-base/bookworm-py312:<tag> (also tagged :latest): a Debian bookworm root file system
# (debootstrap --variant=minbase, from Debian's mirror) with this machine's Python 3.12 build (pyenv)
# copied into /usr/local, like the official python:3.12-slim image: /usr/local/bin/python3.12,
# python3, python and pip work. Images from Docker Hub/ECR cannot be pulled here; this is the base
# of the Lambda runtime stand-in (tools/sam/) and of the self-hosting image.
#
# <tag> is a content hash of the inputs (this script, the Debian suite and package list, the Python
# build), so the image is built once and reused until an input changes. Prints the image name on
# stdout (last line); progress and timing go to stderr.
#
#   tools/docker/base-image.sh            build if absent, print the image name
#   tools/docker/base-image.sh --force    rebuild even if the tag exists
#
# Needs a running daemon (tools/docker/dockerd.sh start), root (or sudo) for debootstrap, and a
# Python 3.12 at $REKFACE_PY312_PREFIX (default: pyenv's 3.12.1).
set -euo pipefail

SUITE=bookworm
MIRROR=${REKFACE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PY_PREFIX=${REKFACE_PY312_PREFIX:-$(PYENV_VERSION=3.12.1 python3.12 -c 'import sys; print(sys.prefix)' 2>/dev/null || echo /root/.pyenv/versions/3.12.1)}
REPO=rekface-base/bookworm-py312
# The shared libraries the Python build's own extension modules link against (ssl, ctypes, sqlite3,
# bz2, lzma, zlib, readline, curses, expat, nis), plus CA certificates. Tk/X11 are left out.
PACKAGES=ca-certificates,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g,libncursesw6,libreadline8,libexpat1,libnsl2,libtirpc3
# Parts of the standard library a server never imports: tests, IDLE, Tk, 2to3, the static library.
STDLIB_DROP=(test idlelib tkinter turtledemo turtle.py lib2to3 ensurepip config-3.12-x86_64-linux-gnu)

log() { echo "base-image.sh: $*" >&2; }
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)

force=0
[ "${1:-}" = --force ] && force=1

[ -x "$PY_PREFIX/bin/python3.12" ] || {
    log "no Python 3.12 at $PY_PREFIX (set REKFACE_PY312_PREFIX)"
    exit 1
}
docker info >/dev/null 2>&1 || {
    log "docker does not answer: run tools/docker/dockerd.sh start first"
    exit 1
}

tag=$(
    {
        cat "$0"
        echo "$SUITE $MIRROR $PACKAGES"
        "$PY_PREFIX/bin/python3.12" -VV
        sha256sum "$PY_PREFIX/bin/python3.12" "$PY_PREFIX/lib/libpython3.12.so.1.0" | cut -d' ' -f1
    } | sha256sum | cut -c1-12
)
image=$REPO:$tag

if [ $force = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    docker tag "$image" "$REPO:latest"
    log "$image already built"
    echo "$image"
    exit 0
fi

command -v debootstrap >/dev/null || "${SUDO[@]}" apt-get install -y -q debootstrap >&2
start=$(date +%s)
work=$(mktemp -d /var/tmp/rekface-base.XXXXXX)
cleanup() { "${SUDO[@]}" rm -rf "$work"; }
trap cleanup EXIT
root=$work/rootfs

log "debootstrap --variant=minbase $SUITE from $MIRROR"
"${SUDO[@]}" debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -30 "$work/debootstrap.log" >&2
    exit 1
}
log "debootstrap done in $(($(date +%s) - start)) s"

log "copying Python from $PY_PREFIX to /usr/local"
"${SUDO[@]}" mkdir -p "$root/usr/local/bin" "$root/usr/local/lib"
"${SUDO[@]}" cp -a "$PY_PREFIX/lib/libpython3.12.so.1.0" "$PY_PREFIX/lib/libpython3.12.so" \
    "$PY_PREFIX/lib/libpython3.so" "$root/usr/local/lib/"
"${SUDO[@]}" cp -a "$PY_PREFIX/bin/python3.12" "$root/usr/local/bin/"
excludes=()
for d in "${STDLIB_DROP[@]}"; do excludes+=(--exclude="./$d"); done
# site-packages: pip only (whatever else this machine's interpreter carries is not the image's).
"${SUDO[@]}" mkdir -p "$root/usr/local/lib/python3.12"
tar -C "$PY_PREFIX/lib/python3.12" "${excludes[@]}" --exclude=./site-packages \
    --exclude='*.opt-1.pyc' --exclude='*.opt-2.pyc' -cf - . |
    "${SUDO[@]}" tar -C "$root/usr/local/lib/python3.12" -xf -
"${SUDO[@]}" mkdir -p "$root/usr/local/lib/python3.12/site-packages"
tar -C "$PY_PREFIX/lib/python3.12/site-packages" -cf - pip $(cd "$PY_PREFIX/lib/python3.12/site-packages" && ls -d pip-*.dist-info) |
    "${SUDO[@]}" tar -C "$root/usr/local/lib/python3.12/site-packages" -xf -
"${SUDO[@]}" sh -s "$root" <<'SH'
set -e
root=$1
cd "$root/usr/local/bin"
ln -sf python3.12 python3
ln -sf python3.12 python
for name in pip pip3 pip3.12; do
    printf '#!/usr/local/bin/python3.12\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n' >"$name"
    chmod 755 "$name"
done
# /usr/local/lib is on the loader's default path: find libpython there (the build's RUNPATH
# points at the pyenv prefix, which does not exist in the image).
chroot "$root" /sbin/ldconfig
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/cache/debconf/*-old
SH
"${SUDO[@]}" chroot "$root" /usr/local/bin/python3 -c 'import ssl, sqlite3, ctypes, bz2, lzma, zlib, json, uuid' || {
    log "the copied Python does not import its extension modules"
    exit 1
}

log "docker import $image"
"${SUDO[@]}" tar -C "$root" --numeric-owner -cf - . | docker import \
    -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' \
    -m "rekface base: debootstrap minbase $SUITE + Python $("$PY_PREFIX/bin/python3.12" -V | cut -d' ' -f2)" \
    - "$image" >/dev/null
docker tag "$image" "$REPO:latest"
size=$(docker image inspect -f '{{.Size}}' "$image")
log "built $image ($((size / 1000000)) MB) in $(($(date +%s) - start)) s"
echo "$image"
