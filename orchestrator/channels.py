"""Where a model server is and how the orchestrator's long-lived channels to it are made.

Every model-server client (Qwen-Edit, Moondream) opens its channel here, so they share the message
limits and the load-balancing policy: with a `dns:///name:port` target naming a headless Service,
`round_robin` spreads calls over every address DNS returns, and the servers' connection age
(`max_connection_age_s`) makes clients re-resolve, so replicas added later get traffic too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import grpc
import grpc.aio
from annotated_types import Gt

# Edited images and batches of several travel in one message; gRPC's default limit is 4 MiB.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServerAddress:
    """A model server: its gRPC target and the longest one call may take (the request's deadline may cut it)."""

    target: str
    timeout_s: Annotated[float, Gt(0)] = 120.0

    def __post_init__(self) -> None:
        if not self.target.strip():
            raise ValueError("target: must name a host:port or a dns:/// target")


def channel_options() -> list[tuple[str, int | str]]:
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.lb_policy_name", "round_robin"),
    ]


def open_aio_channel(address: ServerAddress, extra_options: Sequence[tuple[str, int | str]] = ()) -> grpc.aio.Channel:
    """An asyncio channel; open one per process and server, and close it at shutdown.

    gRPC re-resolves at most every 30 s (`grpc.dns_min_time_between_resolutions_ms`), well within the
    servers' default connection age of 60 s; tests shorten both through `extra_options`.
    """
    return grpc.aio.insecure_channel(address.target, options=[*channel_options(), *extra_options])


def open_channel(address: ServerAddress) -> grpc.Channel:
    """A blocking channel (for clients called from worker threads)."""
    return grpc.insecure_channel(address.target, options=channel_options())
