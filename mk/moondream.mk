# The Moondream server (servers/moondream): its own environment, because moondream2's remote code needs
# transformers 4.x; its tiny offline stand-in; its benchmark.
MOONDREAM_VENV := .venv-moondream
MOONDREAM_PY := $(MOONDREAM_VENV)/bin/python
MOONDREAM_STANDIN := $(WEIGHTS_STANDIN)/moondream
SETUP_TARGETS += $(MOONDREAM_VENV)/.installed

.PHONY: moondream-standin moondream-serve bench-moondream lock-moondream

# torch==2.13.0 resolves to the CPU wheel on this project's machines; any other version downloads gigabytes.
$(MOONDREAM_VENV)/.installed: pyproject.toml requirements/moondream.lock
	test -x $(MOONDREAM_PY) || $(PYTHON) -m venv $(MOONDREAM_VENV)
	$(MOONDREAM_PY) -m pip install $(PIP_FLAGS) --upgrade "pip>=25"
	$(MOONDREAM_PY) -m pip install $(PIP_FLAGS) -c requirements/moondream.lock -e ".[moondream]"
	touch $@

$(MOONDREAM_STANDIN)/STANDIN: | $(MOONDREAM_VENV)/.installed
	$(MOONDREAM_PY) -m servers.moondream.standin --out $(MOONDREAM_STANDIN)

moondream-standin: $(MOONDREAM_STANDIN)/STANDIN

# The server on the stand-in (real weights: --adapter moondream2 --model-dir models/real/moondream2).
moondream-serve: $(MOONDREAM_STANDIN)/STANDIN
	$(MOONDREAM_PY) -m servers.moondream --adapter transformers-vlm --model-dir $(MOONDREAM_STANDIN)

bench-moondream: $(VENV)/.installed $(MOONDREAM_STANDIN)/STANDIN
	$(PY) -m bench.moondream --model-dir $(MOONDREAM_STANDIN) --out bench/results/moondream.json

lock-moondream:
	$(MOONDREAM_PY) -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements/moondream.lock
