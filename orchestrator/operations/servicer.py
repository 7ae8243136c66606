"""The public `inpaint.v1.OperationsService`: a thin shell over `OperationsEngine`.

Handlers raise; the shared interceptor ends a failed call with the status and its google.rpc details
(`status.error_status`, given to the server by `orchestrator.service`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio
from inpaint.v1 import image_pb2, inpaint_pb2, operations_pb2, operations_pb2_grpc

from orchestrator.operations.engine import OperationsEngine
from servers.common.server import ModelServer

SERVICE_NAME = "inpaint.v1.OperationsService"


class OperationsServicer(operations_pb2_grpc.OperationsServiceServicer):
    def __init__(self, server: ModelServer, engine: OperationsEngine) -> None:
        self.server = server
        self.engine = engine

    async def SubmitInpaint(
        self, request: operations_pb2.SubmitInpaintRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.Operation:
        self.server.require_ready()
        operation, _ = await self.engine.submit(
            request.request, fresh_run=request.fresh_run, budget_s=request.budget_seconds
        )
        return operation

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.Operation:
        return await self.engine.get(request.name)

    async def WatchOperation(
        self, request: operations_pb2.WatchOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[operations_pb2.OperationEvent]:
        async for event in self.engine.watch(request.name):
            yield event

    async def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.Operation:
        return await self.engine.cancel(request.name)

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.ListOperationsResponse:
        operations, token = await self.engine.list_operations(request.filter, request.page_size, request.page_token)
        return operations_pb2.ListOperationsResponse(operations=operations, next_page_token=token)

    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.DeleteOperationResponse:
        await self.engine.delete(request.name)
        return operations_pb2.DeleteOperationResponse()

    async def GetCandidateImage(
        self, request: operations_pb2.GetCandidateImageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inpaint_pb2.CandidateImage:
        data = await self.engine.candidate_image(request.name, request.candidate_id)
        return inpaint_pb2.CandidateImage(
            candidate_id=request.candidate_id, image=image_pb2.Image(data=data, mime_type="image/png")
        )
