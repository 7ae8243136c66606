"""The public `inpaint.v1.OperationsService`: a thin shell over `OperationsEngine`.

Each handler ends a failed call itself with the status and its google.rpc details (`status.py`), streams
included (the shared interceptor maps errors to bare status codes, without details).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio
from inpaint.v1 import image_pb2, inpaint_pb2, operations_pb2, operations_pb2_grpc

from orchestrator.operations.engine import OperationsEngine
from orchestrator.operations.status import abort_with_details
from servers.common.server import ModelServer

SERVICE_NAME = "inpaint.v1.OperationsService"


class OperationsServicer(operations_pb2_grpc.OperationsServiceServicer):
    def __init__(self, server: ModelServer, engine: OperationsEngine) -> None:
        self.server = server
        self.engine = engine

    async def SubmitInpaint(
        self, request: operations_pb2.SubmitInpaintRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.Operation:
        try:
            self.server.require_ready()
            operation, _ = await self.engine.submit(
                request.request, fresh_run=request.fresh_run, budget_s=request.budget_seconds
            )
            return operation
        except Exception as error:
            await abort_with_details(context, error)
            raise

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.Operation:
        try:
            return await self.engine.get(request.name)
        except Exception as error:
            await abort_with_details(context, error)
            raise

    async def WatchOperation(
        self, request: operations_pb2.WatchOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[operations_pb2.OperationEvent]:
        try:
            async for event in self.engine.watch(request.name):
                yield event
        except Exception as error:
            await abort_with_details(context, error)

    async def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.Operation:
        try:
            return await self.engine.cancel(request.name)
        except Exception as error:
            await abort_with_details(context, error)
            raise

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.ListOperationsResponse:
        try:
            operations, token = await self.engine.list_operations(request.filter, request.page_size, request.page_token)
            return operations_pb2.ListOperationsResponse(operations=operations, next_page_token=token)
        except Exception as error:
            await abort_with_details(context, error)
            raise

    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> operations_pb2.DeleteOperationResponse:
        try:
            await self.engine.delete(request.name)
            return operations_pb2.DeleteOperationResponse()
        except Exception as error:
            await abort_with_details(context, error)
            raise

    async def GetCandidateImage(
        self, request: operations_pb2.GetCandidateImageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inpaint_pb2.CandidateImage:
        try:
            data = await self.engine.candidate_image(request.name, request.candidate_id)
            return inpaint_pb2.CandidateImage(
                candidate_id=request.candidate_id, image=image_pb2.Image(data=data, mime_type="image/png")
            )
        except Exception as error:
            await abort_with_details(context, error)
            raise
