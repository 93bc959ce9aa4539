# rekface serve as a container image: the Rekognition face API on your own servers.
#
#   docker build -t rekface .          (or `make image`: its base is built from Debian packages
#                                        unless BASE_IMAGE=python:3.12-slim is given)
#   docker run -v rekface-data:/data -p 8765:8765 \
#     -v ./credentials:/run/secrets/rekface-credentials:ro \
#     -e REKFACE_CREDENTIALS=/run/secrets/rekface-credentials rekface
#
# Configuration is the REKFACE_* variables of `rekface serve` (docs/self-hosting.md). The default
# command listens on 0.0.0.0, so it needs REKFACE_CREDENTIALS (an AWS shared-credentials file: every
# request must be SigV4-signed with one of its keys) or an explicit REKFACE_ALLOW_ANONYMOUS=1; the
# image sets neither, so it refuses to start anonymously. It runs as an unprivileged user (uid 10001).

ARG BASE_IMAGE=python:3.12-slim

# ---- build: a virtualenv with the pinned runtime dependencies, rekface, and the models ----------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# A venv without pip of its own: the base image's pip installs into it (--python), so nothing of
# pip ends up in the runtime image.
RUN python3 -m venv --without-pip /opt/rekface/venv
# Extra CAs of a TLS-inspecting proxy, if `make image` found any (deploy/build-ca/README.md): for
# pip in this build stage only; the runtime stage copies /opt/rekface alone.
COPY deploy/build-ca/ /tmp/build-ca/
RUN if ls /tmp/build-ca/*.crt >/dev/null 2>&1; then \
        cat "$(python3 -c 'from pip._vendor import certifi; print(certifi.where())')" \
            /tmp/build-ca/*.crt > /etc/pip-build-ca.pem \
        && printf '[global]\ncert = /etc/pip-build-ca.pem\n' > /etc/pip.conf; fi
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when the pins change.
# requirements.txt pins the runtime; requirements-dev.txt pins the postgres/pgvector drivers too
# (one freeze, used here as constraints, so the image gets exactly the versions the tests ran).
COPY requirements.txt requirements-dev.txt ./
RUN python3 -m pip --python /opt/rekface/venv/bin/python install \
        -r requirements.txt -c requirements-dev.txt "psycopg[binary]" psycopg-pool pgvector
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python3 -m pip --python /opt/rekface/venv/bin/python install --no-deps .
# The shipped models, checked against MANIFEST.tsv's sha256 (the build fails on any mismatch),
# then loaded once by the engine, which checks its own pinned digests and the ONNX graphs.
COPY layers/models /opt/rekface/models
COPY deploy/entrypoint.sh /opt/rekface/entrypoint.sh
RUN cd /opt/rekface/models \
    && awk -F '\t' 'NR > 1 { print $3 "  " $1 }' MANIFEST.tsv > /tmp/models.sha256 \
    && test "$(wc -l < /tmp/models.sha256)" -ge 2 \
    && sha256sum --check --strict /tmp/models.sha256 \
    && REKFACE_MODELS_DIR=/opt/rekface/models /opt/rekface/venv/bin/python -c \
        "from rekface.engine.faces import FaceEngine; from rekface.settings import Settings; \
FaceEngine(Settings.from_env()).warm_up(); print('models verified')"

# ---- runtime: the base image, the venv and the models; nothing else ------------------------------
FROM ${BASE_IMAGE}
# tini as PID 1: it forwards SIGTERM (docker stop, Kubernetes) to rekface serve, which stops
# accepting, finishes in-flight requests and exits; a bare PID 1 would ignore SIGTERM.
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tini \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home rekface \
    && mkdir -p /data && chown rekface:rekface /data && chmod 0700 /data
COPY --from=build /opt/rekface /opt/rekface
ENV PATH=/opt/rekface/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REKFACE_MODELS_DIR=/opt/rekface/models \
    REKFACE_DATA_DIR=/data \
    REKFACE_PORT=8765
USER rekface
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8765
# /health is answered outside the request queue; the check calls 127.0.0.1:$REKFACE_PORT, so
# REKFACE_HOST must include loopback (0.0.0.0, the default, does).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('REKFACE_PORT', '8765'), timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "/opt/rekface/entrypoint.sh"]
