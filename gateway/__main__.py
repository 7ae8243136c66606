"""`python -m gateway [--port 8080] [--orchestrator 127.0.0.1:50050]`: serve the gateway and the console."""

from __future__ import annotations

import sys

import uvicorn

from gateway.app import create_app
from gateway.config import GatewayConfig
from servers.common.logs import configure_logging
from servers.common.settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_settings(GatewayConfig, sys.argv[1:] if argv is None else argv)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    # uvicorn logs through the JSON-line root logger configured above (log_config=None).
    uvicorn.run(
        create_app(config), host=config.host, port=config.port, log_config=None, log_level=config.log_level.lower()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
