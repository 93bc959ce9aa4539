#!/usr/bin/env bash
# Build rekface-base/lambda-python:3.12, a local stand-in for AWS's public.ecr.aws/lambda/python:3.12
# (images from Docker Hub/ECR cannot be pulled here; on a machine that can, SAM pulls AWS's image and
# none of this is needed). FROM rekface-base/bookworm-py312 (tools/docker/base-image.sh), with:
#   /var/runtime            awslambdaric from PyPI (pinned in lambda-image/runtime-requirements.txt),
#                           hash-checked bytecode, and the runtime's bootstrap
#   /lambda-entrypoint.sh   AWS's entry-point contract: `docker run IMAGE app.handler` serves the
#                           invoke API through the Runtime Interface Emulator; under Lambda (or when
#                           the RIE starts the runtime itself, as SAM does) runs the bootstrap
#   /usr/local/bin/aws-lambda-rie   the RIE that ships inside the SAM CLI package
#   /var/lang/bin/python3.12        where AWS's image keeps Python
# and tagged public.ecr.aws/lambda/python:3.12-x86_64 (the name SAM builds its samcli/lambda-python
# images FROM for a python3.12 ZIP function) so that `sam local ... --skip-pull-image` uses it. An
# existing image of that name that is not ours (AWS's own) is never overwritten.
#
#   SAM_PYTHON=.venv-sam/bin/python tools/sam/lambda-image.sh     prints the image name (last line)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SAM_PYTHON=${SAM_PYTHON:-$REPO/.venv-sam/bin/python}
PY312=(env PYENV_VERSION=3.12.1 python3.12)
IMAGE=rekface-base/lambda-python
AWS_NAMES=(public.ecr.aws/lambda/python:3.12-x86_64 public.ecr.aws/lambda/python:3.12)
LABEL=org.rekface.lambda-stand-in

log() { echo "lambda-image.sh: $*" >&2; }

rie=$("$SAM_PYTHON" -c 'import pathlib, samcli; print(pathlib.Path(samcli.__file__).parent / "local/rapid/aws-lambda-rie-x86_64")')
[ -x "$rie" ] || {
    log "no aws-lambda-rie at $rie (install aws-sam-cli: make .venv-sam/.installed)"
    exit 1
}
base=$("$REPO/tools/docker/base-image.sh")
base_id=$(docker image inspect -f '{{.Id}}' "$base")

tag=3.12-$(
    {
        cat "$0" "$HERE"/lambda-image/*
        sha256sum "$rie" | cut -d' ' -f1
        echo "$base_id"
    } | sha256sum | cut -c1-12
)
start=$(date +%s)
if docker image inspect "$IMAGE:$tag" >/dev/null 2>&1; then
    log "$IMAGE:$tag already built"
else
    ctx=$(mktemp -d /tmp/rekface-lambda-image.XXXXXX)
    trap 'rm -rf "$ctx"' EXIT
    cp "$HERE/lambda-image/Dockerfile" "$HERE/lambda-image/lambda-entrypoint.sh" "$ctx/"
    cp "$rie" "$ctx/aws-lambda-rie"
    mkdir -p "$ctx/runtime" "$ctx/var-lang/bin"
    cp "$HERE/lambda-image/bootstrap" "$ctx/runtime/bootstrap"
    chmod 755 "$ctx/aws-lambda-rie" "$ctx/lambda-entrypoint.sh" "$ctx/runtime/bootstrap"
    ln -s /usr/local/bin/python3.12 "$ctx/var-lang/bin/python3.12"
    ln -s python3.12 "$ctx/var-lang/bin/python3"
    ln -s python3.12 "$ctx/var-lang/bin/python"
    log "installing awslambdaric into /var/runtime"
    "${PY312[@]}" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
        --only-binary=:all: --target "$ctx/runtime" -r "$HERE/lambda-image/runtime-requirements.txt"
    # The runtime's own modules load at every cold start from a read-only disk: hash-checked .pyc.
    "${PY312[@]}" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$ctx/runtime" >/dev/null
    log "docker build $IMAGE:$tag FROM $base"
    DOCKER_BUILDKIT=0 docker build --quiet --network host --build-arg "BASE=$base" \
        -t "$IMAGE:$tag" "$ctx" >/dev/null
fi
docker tag "$IMAGE:$tag" "$IMAGE:3.12"
for name in "${AWS_NAMES[@]}"; do
    if docker image inspect "$name" >/dev/null 2>&1 &&
        [ -z "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$name")" ]; then
        log "$name exists and is not ours (AWS's image?): left as is"
        continue
    fi
    docker tag "$IMAGE:$tag" "$name"
done
log "$IMAGE:$tag ready in $(($(date +%s) - start)) s (also tagged ${AWS_NAMES[*]})"
echo "$IMAGE:$tag"
