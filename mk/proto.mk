# Contracts: protos/inpaint/v1/*.proto -> gen/python/inpaint/v1/ (messages, .pyi stubs, gRPC stubs).
# The generated code is committed; `make proto-check` (and tests/common/test_generated_code.py) fail when
# it is stale. grpcio-tools comes from the main environment: its pinned version generates code that
# imports under protobuf<7, which tritonclient requires.
.PHONY: proto proto-check proto-lint
PROTO_DIR_ROOT := protos

proto: $(VENV)/.installed
	$(PY) protos/generate.py

proto-check: $(VENV)/.installed
	$(PY) protos/generate.py --check

# buf STANDARD lint; buf comes from the npm registry (@bufbuild/buf ships the binary).
proto-lint:
	@command -v npx >/dev/null || { echo "proto-lint needs npx (Node.js) for @bufbuild/buf"; exit 1; }
	cd $(PROTO_DIR_ROOT) && npx --yes @bufbuild/buf@1.75.0 lint

# `make setup` regenerates only when a .proto is newer than its generated module (output is identical
# otherwise, so a fresh clone's checkout order does no harm).
PROTO_GENERATED := $(patsubst protos/%.proto,gen/python/%_pb2.py,$(sort $(wildcard protos/inpaint/v1/*.proto)))
SETUP_TARGETS += $(PROTO_GENERATED)

gen/python/%_pb2.py: protos/%.proto | $(VENV)/.installed
	$(PY) protos/generate.py
