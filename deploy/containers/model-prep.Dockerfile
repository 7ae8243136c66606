# syntax=docker/dockerfile:1.7
# The init container that fills Triton's model repository: the `tools` extra (onnx) only, plus this
# repository's triton_models/ configuration files (config.pbtxt and configs/cpu.pbtxt of each model).
#   python -m tools.models.fetch --out W && python -m tools.models.prepare --weights W --repository R
#   python -m tools.models.standins --out W && ...   (tiny random-weight stand-ins, offline)
# Build from the repository root:
#   docker build -f deploy/containers/model-prep.Dockerfile -t inpaint/model-prep:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml ./
COPY requirements/orchestrator.lock requirements/
COPY gen gen
COPY orchestrator orchestrator
COPY servers servers
COPY tools tools
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -c requirements/orchestrator.lock ".[tools]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 inpaint \
    && useradd --system --uid 10001 --gid inpaint --no-create-home --home-dir /tmp inpaint
COPY --from=build /opt/venv /opt/venv
COPY triton_models/ /opt/inpaint/triton_models/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
CMD ["python", "-m", "tools.models.prepare", "--help"]
