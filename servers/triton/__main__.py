"""Serve the model repository with tritonserver in the foreground until SIGINT/SIGTERM.

python -m servers.triton [--repository triton_models] [--config-name cpu|default] [--grpc-port 8001]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from servers.triton.launcher import TritonServer, TritonServerConfig, TritonStartError
from tools.models.prepare import read_provenance


def main(argv: list[str] | None = None) -> int:
    defaults = TritonServerConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repository", type=Path, default=defaults.repository)
    p.add_argument(
        "--config-name", default="cpu", help="'cpu' (python backend + onnxruntime) or 'default' (config.pbtxt)"
    )
    p.add_argument("--http-port", type=int, default=defaults.http_port)
    p.add_argument("--grpc-port", type=int, default=defaults.grpc_port)
    p.add_argument("--metrics-port", type=int, default=defaults.metrics_port)
    p.add_argument("--metrics", action="store_true", help="serve Prometheus metrics")
    p.add_argument("--log-file", type=Path, default=None)
    args = p.parse_args(argv)
    provenance = read_provenance(args.repository)
    if provenance is None:
        print(
            f"error: {args.repository} holds no prepared models; run `make standins` or `make models`", file=sys.stderr
        )
        return 1
    standins = [m.name for m in provenance if m.standin]
    if standins:
        print(f"WARNING: serving STAND-IN models with random weights: {', '.join(standins)}", flush=True)
    config = TritonServerConfig(
        repository=args.repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        metrics=args.metrics,
        model_config_name=None if args.config_name == "default" else args.config_name,
        log_file=args.log_file,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = TritonServer(config)
    try:
        server.start()
    except TritonStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"tritonserver ready: grpc {config.grpc_url}, http {config.http_url}", flush=True)
    try:
        while not stop.wait(1.0):
            if server.process is not None and server.process.poll() is not None:
                print(f"tritonserver exited with code {server.process.returncode}", file=sys.stderr)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
