# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Exact torch/torchvision pins for x86_64 (local wheels on our machines); elsewhere pip resolves.
CONSTRAINTS := $(if $(filter x86_64,$(shell uname -m)),-c ops/constraints.txt,)
STAMP := $(VENV)/.installed-test
PYTEST_ARGS ?=

.PHONY: venv lint typecheck test unit integration e2e chaos test-sglang run check-gpu bench-queue bench-engine bench-media bench-transfer bench-serve clean

$(STAMP): pyproject.toml ops/constraints.txt
	@echo "==> installing the project into $(VENV) (PyTorch, transformers, NIXL ...; the first install takes a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --progress-bar off --upgrade pip
	$(PIP) install --progress-bar off $(CONSTRAINTS) -e '.[test]'
	@touch $@

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

unit: venv
	$(VENV)/bin/pytest -q tests/unit $(PYTEST_ARGS)

integration: venv
	$(VENV)/bin/pytest -q tests/integration $(PYTEST_ARGS)

chaos: venv
	$(VENV)/bin/pytest -q tests/chaos $(PYTEST_ARGS)

# The sglang backend's tests in their own virtualenv (.venv-sglang, ~11 GB; docs/SGLANG.md)
test-sglang:
	PYTHON=$(PYTHON) PYTEST_ARGS="$(PYTEST_ARGS)" ops/test_sglang.sh

run: venv
	$(PY) -m ops.run

# On a machine with an NVIDIA GPU: e-p-d on CUDA against HF, device transfers, a 2B-shaped engine run
check-gpu: venv
	$(PY) -m ops.gpu_check

bench-queue: venv
	$(PY) -m ops.bench.queue_bench

bench-engine: venv
	$(PY) -m ops.bench.engine_bench

bench-media: venv
	$(PY) -m ops.bench.media_bench

bench-transfer: venv
	$(PY) -m ops.bench.transfer_bench

# Our mock-engine system beside NVIDIA Dynamo's frontend + mocker (installed into .bench/dynamo)
bench-serve: venv
	$(PY) -m ops.bench.serve_bench --peer dynamo --engine mock

clean:
	rm -rf $(VENV) .bench .cache .mypy_cache .ruff_cache .pytest_cache
