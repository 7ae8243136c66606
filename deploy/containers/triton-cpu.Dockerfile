# syntax=docker/dockerfile:1.7
# Triton for CPU clusters (the dev overlay): the real tritonserver binary from PyPI nvidia-pytriton,
# python backend only, running the ONNX models through onnxruntime (<model>/configs/cpu.pbtxt, selected
# with --model-config-name=cpu). Its own environment from requirements/triton.lock (numpy<2), without
# this project. GPU clusters use NVIDIA's image (nvcr.io/nvidia/tritonserver) instead.
# Build from the repository root:
#   docker build -f deploy/containers/triton-cpu.Dockerfile -t inpaint/triton-cpu:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE}
COPY requirements/triton.lock /tmp/triton.lock
# What the binary needs: the python-backend stub for this Python beside
# libtriton_python.so, nvidia_pytriton.libs and Python's libdir on LD_LIBRARY_PATH, the venv's bin/
# first on PATH (the stub runs model.py with the `python` it finds there).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/triton.lock \
    && rm /tmp/triton.lock \
    && PYV="$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
    && DIST="/opt/venv/lib/python${PYV}/site-packages/pytriton/tritonserver" \
    && mkdir -p /opt/triton \
    && cp -R "${DIST}/backends" /opt/triton/backends \
    && cp "${DIST}/python_backend_stubs/${PYV}/triton_python_backend_stub" /opt/triton/backends/python/ \
    && ln -s "${DIST}/bin/tritonserver" /usr/local/bin/tritonserver \
    && ln -s "/opt/venv/lib/python${PYV}/site-packages/nvidia_pytriton.libs" /opt/triton/libs \
    && groupadd --system --gid 10001 inpaint \
    && useradd --system --uid 10001 --gid inpaint --no-create-home --home-dir /tmp inpaint
ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/triton/libs:/usr/local/lib \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4).status != 200)"
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models", "--model-config-name=cpu", "--backend-directory=/opt/triton/backends", "--pinned-memory-pool-byte-size=0", "--allow-gpu-metrics=false"]
