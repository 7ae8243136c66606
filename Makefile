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

.PHONY: help setup standins models proto lint test demo face-demo up down status e2e bench bench-fleet lock clean

help:
	@echo "make demo      bring the stack up, run one task on a bundled photo pair, write out/demo/, bring it down"
	@echo "make test      every test, against real local server processes"
	@echo "make setup     build every environment (idempotent)"
	@echo "make up/down   start/stop Triton, Qwen-Edit, Moondream and the orchestrator on 127.0.0.1 (logs: runs/current/)"
	@echo "make console   the HTTP/JSON gateway and the web console on the local stack (prints the URL)"
	@echo "make e2e       end-to-end checks (E2E_ORCHESTRATOR=host:port targets a running stack)"
	@echo "make models    download the real weights (needs internet) and prepare triton_models/"
	@echo "make standins  generate tiny random-weight stand-ins and prepare triton_models/ (offline)"
	@echo "make face-demo the face stage alone (Triton only) on the bundled photo pair"
	@echo "make lint      ruff and mypy"
	@echo "make bench     every benchmark: bench/results/latest.json and bench/results/SUMMARY.md"
	@echo "make bench-fleet  a simulated GPU fleet: 1, 2, 4 Qwen-Edit replicas under 1, 4, 16 tasks"

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
triton_models/provenance.json: servers/triton/onnx_cpu_model.py | $(VENV)/.installed
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
	$(PY) -m cli.demo --out out/demo $(if $(DEVICE),--device $(DEVICE))

face-demo: setup triton_models/provenance.json
	$(PY) -m cli.face_demo --out out/face_demo

up: setup triton_models/provenance.json
	$(PY) -m stack up $(if $(DEVICE),--device $(DEVICE))

down:
	@if [ -x $(PY) ]; then $(PY) -m stack down; fi

status:
	$(PY) -m stack status

e2e: setup triton_models/provenance.json
	$(PY) -m tools.e2e $(if $(E2E_ORCHESTRATOR),--orchestrator $(E2E_ORCHESTRATOR)) $(if $(DEVICE),--device $(DEVICE)) --out out/e2e

bench: setup triton_models/provenance.json
	$(PY) -m bench.face_stage --out bench/results/face_stage.json
	$(PY) -m bench.gemini_scoring
	$(PY) -m bench.orchestrator --out bench/results/orchestrator.json
	$(PY) -m bench.prepare_memory --out bench/results/prepare_memory.json
	$(PY) -m bench.face_features --out bench/results/face_features.json
	$(PY) -m bench.operations --out bench/results/operations.json
	$(MAKE) --no-print-directory bench-qwen-edit bench-moondream bench-fleet bench-gateway
	$(PY) -m bench.summary --results bench/results

bench-fleet: setup triton_models/provenance.json
	$(PY) -m bench.fleet --out bench/results/fleet.json $(FLEET_ARGS)

# Re-resolve and pin every environment (run after changing a dependency in pyproject.toml).
lock:
	$(PY) -m pip freeze --exclude-editable > requirements/orchestrator.lock
	$(TRITON_VENV)/bin/python -m pip freeze > requirements/triton.lock

clean:
	rm -rf out runs .pytest_cache .mypy_cache .ruff_cache
