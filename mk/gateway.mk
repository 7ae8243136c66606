# The HTTP/JSON gateway and its console (gateway/), and what their tests need: Debian's chromium and its
# chromedriver for the console's browser tests (selenium, from PyPI, is in the dev extra).
GATEWAY_PORT ?= 8080

SETUP_TARGETS += $(VENV)/.chromium-installed

.PHONY: console gateway-openapi bench-gateway

$(VENV)/.chromium-installed: | $(VENV)/.installed
	@if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver; fi; \
	fi
	touch $@

# The console in front of the running stack (started first when none runs); prints its URL, Ctrl-C stops it.
console: setup triton_models/provenance.json
	@if ! $(PY) -m stack status >/dev/null 2>&1 || $(PY) -m stack status | grep -qv healthy; then $(PY) -m stack up; fi
	@orchestrator=$$($(PY) -c 'import json; print(json.load(open("runs/current/stack.json"))["ports"]["orchestrator"])'); \
	echo "console: http://127.0.0.1:$(GATEWAY_PORT)/console/  (API: /v1/..., OpenAPI: /openapi.json; Ctrl-C stops it)"; \
	$(PY) -m gateway --port $(GATEWAY_PORT) --orchestrator 127.0.0.1:$$orchestrator

# docs/openapi.json from the protos and the route table (a test fails when it is stale).
gateway-openapi: $(VENV)/.installed
	$(PY) -m gateway.openapi > docs/openapi.json

bench-gateway: setup triton_models/provenance.json
	$(PY) -m bench.gateway --out bench/results/gateway.json
