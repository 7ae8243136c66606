# syntax=docker/dockerfile:1.7
# The Moondream server: the `moondream` extra only (transformers 4.57, torch), apart from Qwen-Edit's
# transformers because moondream2's remote code breaks under transformers 5.
# Build from the repository root. GPU (default, CUDA wheels of torch):
#   docker build -f deploy/containers/moondream.Dockerfile -t inpaint/moondream:0.1.0 .
# CPU, for the dev overlay:
#   docker build -f deploy/containers/moondream.Dockerfile \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t inpaint/moondream:0.1.0-cpu .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The CUDA build must be one PyTorch publishes for the locked torch (torch-wheels.toml) and share its
# CUDA major with Triton 26.08 (CUDA 13, driver R580+) on the same GPU nodes.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
WORKDIR /src
COPY pyproject.toml ./
COPY requirements/moondream.lock requirements/
COPY gen gen
COPY orchestrator orchestrator
COPY servers servers
COPY tools tools
# torch first, from the index of the wanted build (CUDA or CPU), at the version the lock pins; then the
# rest of the extra under the lock, its torch pin stripped of the local label (+cpu) so any build satisfies it.
RUN python -m venv /opt/venv \
    && sed 's/^torch==\([^+]*\)+.*/torch==\1/' requirements/moondream.lock > /tmp/constraints.txt \
    && TORCH_VERSION="$(sed -n 's/^torch==//p' /tmp/constraints.txt)" \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -c /tmp/constraints.txt ".[moondream]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 inpaint \
    && useradd --system --uid 10001 --gid inpaint --no-create-home --home-dir /tmp inpaint
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    HF_HOME=/tmp/hf \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MOONDREAM_HOST=0.0.0.0 \
    MOONDREAM_PORT=50052 \
    MOONDREAM_METRICS_PORT=9462 \
    MOONDREAM_MODEL_DIR=/models/moondream
USER 10001:10001
EXPOSE 50052 9462
HEALTHCHECK --interval=30s --timeout=5s --start-period=15m --retries=3 CMD python -c "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; c = grpc.insecure_channel('127.0.0.1:' + os.environ['MOONDREAM_PORT']); sys.exit(g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=4).status != h.HealthCheckResponse.SERVING)"
ENTRYPOINT ["python", "-m", "servers.moondream"]
