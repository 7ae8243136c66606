# syntax=docker/dockerfile:1.7
# The orchestrator: CPU only, the `orchestrator` extra and nothing of the model servers.
# Build from the repository root:
#   docker build -f deploy/containers/orchestrator.Dockerfile -t inpaint/orchestrator:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml ./
COPY requirements/orchestrator.lock requirements/
COPY gen gen
COPY orchestrator orchestrator
COPY servers servers
# The HTTP/JSON gateway and console run from this image too (deploy/components/gateway).
COPY gateway gateway
COPY tools tools
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -c requirements/orchestrator.lock ".[orchestrator]"

FROM ${PYTHON_IMAGE}
# opencv-python (insightface needs the non-headless build) loads libGL and glib at import.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 inpaint \
    && useradd --system --uid 10001 --gid inpaint --no-create-home --home-dir /tmp inpaint
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    INPAINT_HOST=0.0.0.0 \
    INPAINT_PORT=50050 \
    INPAINT_METRICS_PORT=9460
USER 10001:10001
EXPOSE 50050 9460
# Kubernetes uses its native gRPC probes; this serves `docker run` and compose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=11m --retries=3 CMD python -c "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; c = grpc.insecure_channel('127.0.0.1:' + os.environ['INPAINT_PORT']); sys.exit(g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=4).status != h.HealthCheckResponse.SERVING)"
ENTRYPOINT ["python", "-m", "orchestrator.service"]
