# The Qwen-Image-Edit server: its own environment (diffusers, transformers 5, CPU torch here), a tiny
# stand-in checkpoint for tests, and the benchmark. The real checkpoint goes to $(QWEN_REAL).
QWEN_VENV := .venv-qwen
QWEN_PY := $(QWEN_VENV)/bin/python
QWEN_STANDIN := $(WEIGHTS_STANDIN)/qwen_edit
QWEN_REAL := $(WEIGHTS_REAL)/qwen_image_edit

SETUP_TARGETS += $(QWEN_VENV)/.installed

.PHONY: qwen-edit-model qwen-edit-standin serve-qwen-edit test-qwen-edit bench-qwen-edit lock-qwen-edit

# torch==2.13.0 resolves to the CPU wheel on this machine; GPU images install the CUDA build of it.
$(QWEN_VENV)/.installed: pyproject.toml requirements/qwen_edit.lock
	test -x $(QWEN_PY) || $(PYTHON) -m venv $(QWEN_VENV)
	$(QWEN_PY) -m pip install $(PIP_FLAGS) --upgrade "pip>=25"
	$(QWEN_PY) -m pip install $(PIP_FLAGS) -c requirements/qwen_edit.lock -e ".[qwen-edit]"
	touch $@

# The real checkpoint (needs internet; fails with a clear message without it).
qwen-edit-model: $(QWEN_VENV)/.installed
	$(QWEN_PY) -m servers.qwen_edit.fetch --out $(QWEN_REAL)

qwen-edit-standin: $(QWEN_VENV)/.installed
	$(QWEN_PY) -m servers.qwen_edit.standin --out $(QWEN_STANDIN)

# Serves the real checkpoint when `make models` put it in place, the stand-in otherwise.
serve-qwen-edit: $(QWEN_VENV)/.installed
	@if [ -f $(QWEN_REAL)/model_index.json ]; then dir=$(QWEN_REAL); else \
		echo "No real checkpoint in $(QWEN_REAL): serving the STAND-IN (random weights, outputs are noise)."; \
		[ -f $(QWEN_STANDIN)/model_index.json ] || $(QWEN_PY) -m servers.qwen_edit.standin --out $(QWEN_STANDIN); \
		dir=$(QWEN_STANDIN); fi; \
	$(QWEN_PY) -m servers.qwen_edit --model-dir $$dir $(QWEN_EDIT_ARGS)

test-qwen-edit: $(VENV)/.installed $(QWEN_VENV)/.installed
	$(PY) -m pytest tests/qwen_edit tests/common $(PYTEST_ARGS)

bench-qwen-edit: $(VENV)/.installed $(QWEN_VENV)/.installed
	$(PY) -m bench.qwen_edit --out bench/results/qwen_edit.json $(QWEN_BENCH_ARGS)

lock-qwen-edit:
	$(QWEN_PY) -m pip freeze --exclude-editable > requirements/qwen_edit.lock
