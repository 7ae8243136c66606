"""A model-server replica for the load-spreading test: the project's real server scaffolding (ModelServer,
with its connection age), serving one RPC that answers with the replica's name.

    python -m tests.common.replica_server --name r1 --host 127.0.0.2 --port 50999 --max-connection-age-s 1
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import grpc
import grpc.aio

from servers.common.server import ModelServer, run_server
from servers.common.settings import ServerSettings

WHO = "/test.Replica/Who"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-connection-age-s", type=float, required=True)
    args = parser.parse_args(argv)
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        metrics_port=0,
        max_connection_age_s=args.max_connection_age_s,
        max_connection_age_grace_s=0.5,
        drain_grace_s=1.0,
    )
    server = ModelServer(args.name, settings)
    answer = args.name.encode()

    async def who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return bytes(answer)

    def register(grpc_server: grpc.aio.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "test.Replica", {"Who": grpc.unary_unary_rpc_method_handler(who)}
        )
        grpc_server.add_generic_rpc_handlers((handler,))

    server.add_service("test.Replica", register)
    run_server(server, lambda: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
