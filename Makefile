# spotpack — the commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-unit test-integration lint certs run webhook extender provisioner image demo bench bench-webhook bench-extender bench-provisioner clean

# The image deploy/ names: the version of pyproject.toml (a unit test keeps them equal).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE   ?= ghcr.io/spotpack/spotpack:$(VERSION)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## make .venv and install spotpack with its dev extras

test: $(STAMP) ## run the whole suite (unit, integration on loopback, e2e when a cluster exists)
	@# pytest exits 5 when it collected nothing: a suite that ran no test has failed.
	@$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; \
	exit $$status

test-unit: $(STAMP) ## unit tests only
	$(BIN)/pytest tests/unit

test-integration: $(STAMP) ## integration tests (real servers on loopback)
	$(BIN)/pytest tests/integration

lint: $(STAMP) ## ruff, mypy and the import boundaries
	$(BIN)/ruff check .
	$(BIN)/ruff format --check spotpack webhook extender provisioner
	$(BIN)/mypy spotpack webhook extender provisioner
	$(BIN)/lint-imports

certs: $(STAMP) ## CA + serving certificate into certs/out/
	$(BIN)/spotpack certs --out certs/out

certs/out/tls.crt:
	$(MAKE) certs

run: $(STAMP) ## webhook, extender, provisioner on an embedded cluster (or KUBECONFIG's); FLAGS="..." for spotpack run
	$(BIN)/spotpack run $(FLAGS)

webhook: $(STAMP) certs/out/tls.crt ## the webhook alone over TLS on https://127.0.0.1:8443 (no cluster needed)
	SPOTPACK_WEBHOOK_HOST=127.0.0.1 $(BIN)/spotpack webhook

extender: $(STAMP) certs/out/tls.crt ## the extender over TLS on https://127.0.0.1:8444, embedded local cluster
	SPOTPACK_EXTENDER_HOST=127.0.0.1 $(BIN)/spotpack extender --local

provisioner: $(STAMP) ## the provisioner with the local provider on an embedded cluster
	$(BIN)/spotpack provisioner --local

image: ## build the container image deploy/ runs (IMAGE=..., PYTHON_IMAGE=... to pin a digest)
	docker build $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) -t $(IMAGE) .

demo: $(STAMP) ## replay the shipped scenarios through the real services; reports in reports/
	@mkdir -p reports
	@for s in spark-etl llm-inference gpu-training; do \
	  $(BIN)/spotpack simulate scenarios/$$s.yaml --report reports/$$s.html --json reports/$$s.json || exit $$?; \
	done

bench: bench-webhook bench-extender bench-provisioner ## every benchmark; each ends with one summary line

bench-webhook: $(STAMP) ## webhook p50/p99 latency and throughput over TLS keep-alive
	$(BIN)/python -m bench.webhook

bench-extender: $(STAMP) ## extender filter/prioritize/bind latency at 5,000 nodes / 50,000 pods, RSS
	$(BIN)/python -m bench.extender

bench-provisioner: $(STAMP) ## plan time and cost vs the MILP bound at 100 / 1,000 / 10,000 pending pods
	$(BIN)/python -m bench.provisioner

clean: ## remove the virtualenv, caches and generated certificates
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis certs/out
