"""The orchestrator's Qwen-Edit client against a real grpc.aio server: the request id on every call."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from inpaint.v1 import qwen_edit_pb2, qwen_edit_pb2_grpc

from orchestrator.refine.qwen_client import QwenEditClient, QwenEditClientConfig
from orchestrator.search import Deadline


class RecordingQwenEdit(qwen_edit_pb2_grpc.QwenEditServiceServicer):
    """Answers every Edit with no images, and keeps each call's seeds and `x-request-id` metadata."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], list[str]]] = []

    async def Edit(self, request: qwen_edit_pb2.EditRequest, context: Any) -> qwen_edit_pb2.EditResponse:
        ids = [value for key, value in context.invocation_metadata() if key == "x-request-id"]
        self.calls.append((list(request.seeds), ids))
        return qwen_edit_pb2.EditResponse(stand_in=True, model="recording")


async def _edit(server: RecordingQwenEdit, seeds: int, request_id: str) -> None:
    grpc_server = grpc.aio.server()
    qwen_edit_pb2_grpc.add_QwenEditServiceServicer_to_server(server, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    client = QwenEditClient(QwenEditClientConfig(target=f"127.0.0.1:{port}", max_seeds_per_request=16))
    try:
        request = qwen_edit_pb2.EditRequest(prompt="p", width=16, height=16, seeds=range(seeds))
        await client.edit(request, Deadline.after(30), request_id)
    finally:
        await client.aclose()
        await grpc_server.stop(None)


def test_every_call_of_a_split_edit_carries_the_tasks_request_id() -> None:
    """The Qwen-Edit server logs a call under its `x-request-id`: both parts of a 20-seed stage carry the task's."""
    server = RecordingQwenEdit()
    asyncio.run(_edit(server, seeds=20, request_id="task-31"))
    assert sorted(len(seeds) for seeds, _ in server.calls) == [4, 16]
    assert [ids for _, ids in server.calls] == [["task-31"], ["task-31"]]
