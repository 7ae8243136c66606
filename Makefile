# Face inpainting service. `make demo` and `make test` work on a fresh machine: each sets up what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TRITON_VENV := .venv-triton
WEIGHTS_REAL := models/real
WEIGHTS_STANDIN := models/standins
PIP_FLAGS := --disable-pip-version-check --quiet

# Components add their own setup and test steps in mk/<component>.mk.
SETUP_TARGETS := $(VENV)/.installed $(TRITON_VENV)/.installed
-include $(sort $(wildcard mk/*.mk))

.PHONY: help setup standins models proto lint test demo bench lock clean

help:
	@echo "make demo      run the face stage on a bundled photo pair (stand-ins unless 'make models' ran)"
	@echo "make test      every test, against real local server processes"
	@echo "make setup     build every environment (idempotent)"
	@echo "make models    download the real InsightFace weights (needs internet) and prepare triton_models/"
	@echo "make standins  generate tiny random-weight stand-ins and prepare triton_models/ (offline)"
	@echo "make lint      ruff and mypy"
	@echo "make bench     run the benchmarks, results under bench/results/"

setup: $(SETUP_TARGETS)

$(VENV)/.installed: pyproject.toml requirements/orchestrator.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade "pip>=25"
	$(PY) -m pip install $(PIP_FLAGS) -c requirements/orchestrator.lock -e ".[orchestrator,tools,dev]"
	touch $@

# nvidia-pytriton needs numpy<2, so tritonserver gets an environment of its own.
$(TRITON_VENV)/.installed: requirements/triton.lock
	test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade "pip>=25"
	$(TRITON_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements/triton.lock
	touch $@

# Real weights where `make models` put them, stand-ins otherwise.
triton_models/provenance.json: | $(VENV)/.installed
	@if [ -f $(WEIGHTS_REAL)/inswapper_128.onnx ]; then \
		$(PY) -m tools.models.prepare --weights $(WEIGHTS_REAL); \
	else \
		echo "No real weights in $(WEIGHTS_REAL): preparing STAND-INS (random weights, outputs are noise)."; \
		$(PY) -m tools.models.standins --out $(WEIGHTS_STANDIN) && $(PY) -m tools.models.prepare --weights $(WEIGHTS_STANDIN); \
	fi

standins: $(VENV)/.installed
	$(PY) -m tools.models.standins --out $(WEIGHTS_STANDIN)
	$(PY) -m tools.models.prepare --weights $(WEIGHTS_STANDIN)

models: $(VENV)/.installed
	$(PY) -m tools.models.fetch --out $(WEIGHTS_REAL)
	$(PY) -m tools.models.prepare --weights $(WEIGHTS_REAL)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup triton_models/provenance.json
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup triton_models/provenance.json
	$(PY) -m orchestrator.face_demo --out out/face_demo

bench: setup triton_models/provenance.json
	$(PY) -m bench.face_stage --out bench/results/face_stage.json

# Re-resolve and pin every environment (run after changing a dependency in pyproject.toml).
lock:
	$(PY) -m pip freeze --exclude-editable > requirements/orchestrator.lock
	$(TRITON_VENV)/bin/python -m pip freeze > requirements/triton.lock

clean:
	rm -rf out runs .pytest_cache .mypy_cache .ruff_cache
