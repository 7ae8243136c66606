"""The orchestrator's client of the Qwen-Image-Edit server: one long-lived channel per process.

    client = QwenEditClient(QwenEditClientConfig(target="127.0.0.1:50051"))
    response = await client.edit(request, deadline, request_id="r1")
    await client.aclose()

A request with more seeds than the server takes in one call is split into several calls that run
concurrently (a 20-seed stage becomes two requests), and their images are merged in seed order. A
busy server (RESOURCE_EXHAUSTED) is waited out with backoff while the deadline allows. Every call
carries the request id as `x-request-id` metadata, and a timeout cut to the deadline.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated

import grpc
import grpc.aio
import numpy as np
from annotated_types import Ge
from inpaint.v1 import qwen_edit_pb2, qwen_edit_pb2_grpc

from orchestrator.channels import ServerAddress, open_aio_channel
from orchestrator.imaging.encode import png_message
from orchestrator.search import Deadline, DeadlinePassedError
from servers.common.interceptor import REQUEST_ID_KEY

# The server's own limit on seeds per request (servers/qwen_edit/config.py, `max_seeds`).
SERVER_MAX_SEEDS = 16


@dataclass(frozen=True)
class QwenEditClientConfig(ServerAddress):
    """The Qwen-Edit server and how it is called."""

    target: str = "127.0.0.1:50051"
    timeout_s: float = 600.0
    # Seeds sent in one request: at most the server's `max_seeds`; more are split into several requests.
    max_seeds_per_request: Annotated[int, Ge(1)] = SERVER_MAX_SEEDS


class EditFailedError(RuntimeError):
    """The Qwen-Edit server could not produce the images; the message says why."""


def split_seeds(request: qwen_edit_pb2.EditRequest, per_request: int) -> list[qwen_edit_pb2.EditRequest]:
    """The request as several with at most `per_request` seeds each (the same request when it fits)."""
    seeds = list(request.seeds)
    if len(seeds) <= per_request:
        return [request]
    parts = []
    for start in range(0, len(seeds), per_request):
        part = qwen_edit_pb2.EditRequest()
        part.CopyFrom(request)
        del part.seeds[:]
        part.seeds.extend(seeds[start : start + per_request])
        parts.append(part)
    return parts


class QwenEditClient:
    """Calls the Qwen-Edit server; shared by every task of the process."""

    def __init__(self, config: QwenEditClientConfig) -> None:
        self.config = config
        # Opened on first use: a grpc.aio channel belongs to the event loop that first runs it.
        self._channel: grpc.aio.Channel | None = None

    @property
    def _stub(self) -> qwen_edit_pb2_grpc.QwenEditServiceStub:
        if self._channel is None:
            self._channel = open_aio_channel(self.config)
        return qwen_edit_pb2_grpc.QwenEditServiceStub(self._channel)

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def _call(
        self, request: qwen_edit_pb2.EditRequest, deadline: Deadline, request_id: str
    ) -> qwen_edit_pb2.EditResponse:
        backoff = 0.5
        while True:
            try:
                timeout = deadline.timeout(self.config.timeout_s)
            except DeadlinePassedError as error:
                raise EditFailedError(f"no time left for the edit ({error})") from error
            try:
                response: qwen_edit_pb2.EditResponse = await self._stub.Edit(
                    request, timeout=timeout, metadata=((REQUEST_ID_KEY, request_id),)
                )
                return response
            except grpc.aio.AioRpcError as error:
                # A full queue (several searches at once) is worth waiting out while time remains.
                busy = error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                if not busy or deadline.remaining() <= backoff:
                    raise EditFailedError(f"qwen-edit {error.code().name}: {error.details()}") from error
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 8.0)

    async def edit(
        self, request: qwen_edit_pb2.EditRequest, deadline: Deadline, request_id: str
    ) -> qwen_edit_pb2.EditResponse:
        """One edit; split into several calls when it has more seeds than one call may carry."""
        parts = split_seeds(request, self.config.max_seeds_per_request)
        if len(parts) == 1:
            return await self._call(request, deadline, request_id)
        answers = await asyncio.gather(*(self._call(part, deadline, request_id) for part in parts))
        merged = qwen_edit_pb2.EditResponse()
        merged.CopyFrom(answers[0])
        for answer in answers[1:]:
            merged.images.extend(answer.images)
            merged.total_seconds = max(merged.total_seconds, answer.total_seconds)
        return merged

    async def probe(self, wait_s: float) -> str:
        """What the server serves ("real (model)" or "stand-in (model)"), waiting while it loads.

        Doubles as a warm-up; a server that does not answer is reported, not fatal.
        """
        probe = np.full((32, 32, 3), 128, np.uint8)
        request = qwen_edit_pb2.EditRequest(
            image=png_message(probe), prompt="warm-up", num_inference_steps=1, true_cfg_scale=1.0,
            width=32, height=32, seeds=[0],
        )  # fmt: skip
        until = time.monotonic() + wait_s
        while True:  # UNAVAILABLE until the model is loaded
            try:
                answer = await self._stub.Edit(request, timeout=120, metadata=((REQUEST_ID_KEY, "warm-up"),))
                return f"stand-in ({answer.model})" if answer.stand_in else f"real ({answer.model})"
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > until:
                    return f"unavailable ({error.code().name})"
                await asyncio.sleep(1.0)
