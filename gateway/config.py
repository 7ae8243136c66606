"""The gateway's settings: where it listens, the orchestrator it fronts, and how long calls may take.

    config = load_settings(GatewayConfig, sys.argv[1:])   # flags, INPAINT_GATEWAY_* environment, or a file

Authentication is not configured here: the gateway forwards each caller's credential to the gRPC port,
which checks it (`servers/common/auth.py`), so both ports accept exactly the same keys.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servers.common.settings import Port, ServerSettings


class GatewayConfig(ServerSettings):
    """The HTTP/JSON gateway and console (`python -m gateway`). Of the shared server settings it uses
    `host`, `port` and `log_level`."""

    model_config = SettingsConfigDict(env_prefix="INPAINT_GATEWAY_")

    port: Port = 8080
    # The orchestrator's public gRPC port.
    orchestrator: str = "127.0.0.1:50050"
    # Calls that return at once (submit, get, list, cancel, delete, images).
    call_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    # Calls that last as long as a task (Inpaint, StreamInpaint, WatchOperation): the orchestrator's default
    # deadline.
    task_timeout_s: Annotated[float, Field(gt=0)] = 1800.0
    # Largest request body accepted (three base64 images and settings).
    max_body_bytes: Annotated[int, Field(ge=1024)] = 96 * 1024 * 1024
    # Serve the console at /console/.
    console: bool = True
