"""The one place where errors become the call's gRPC status, and where every call gets a request id,
one log line and its metrics.

Servicers raise `servers.common.errors` exceptions; they never call `context.abort` for domain errors.
By default an error becomes its status code and message; a service may give its own `ErrorStatus`
(the orchestrator's public API adds google.rpc details to every error).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc
import grpc.aio

from servers.common import errors
from servers.common.logs import REQUEST_ID, fields
from servers.common.metrics import ServerMetrics

REQUEST_ID_KEY = "x-request-id"

STATUS_BY_ERROR: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Internal: grpc.StatusCode.INTERNAL,
}

# Health checks and reflection are polled constantly; they get neither log lines nor request metrics.
_QUIET_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


def status_for(error: errors.ServiceError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


# An error as the call's status: code, message and trailing metadata (e.g. grpc-status-details-bin).
ErrorStatus = Callable[[Exception], grpc.Status]


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and value:
            return str(value)[:64]
    return uuid.uuid4().hex[:16]


class CallTracker:
    """Counts the model calls in flight, and refuses new ones once draining starts."""

    def __init__(self) -> None:
        self.active = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        if self.draining:
            raise errors.Unavailable("the server is shutting down")
        self.active += 1
        self._idle.clear()

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


UnaryBehaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]  # an async generator, or writes


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary and server-streaming handlers alike: streams too get the request id, the error mapping,
    one log line, the request metrics, and count as calls in flight for the SIGTERM drain."""

    def __init__(
        self,
        metrics: ServerMetrics,
        logger: logging.Logger,
        calls: CallTracker | None = None,
        error_status: ErrorStatus | None = None,
    ) -> None:
        self._metrics = metrics
        self._log = logger
        self.calls = calls or CallTracker()
        self._error_status = error_status

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_QUIET_PREFIXES):
            return handler
        request_id = _request_id(handler_call_details.invocation_metadata)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(method, request_id, cast(UnaryBehaviour, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, request_id, cast(StreamBehaviour, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    @contextlib.asynccontextmanager
    async def _observed(
        self, method: str, request_id: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """One call's bookkeeping: request id, drain accounting, error mapping, metrics, one log line."""
        token = REQUEST_ID.set(request_id)
        started = time.monotonic()
        code = grpc.StatusCode.OK
        detail = ""
        entered = False
        # A failed call's status is sent once its metrics and log line are recorded: a client that has seen
        # the error finds it counted.
        trailing: Any = None
        try:
            await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
            self.calls.enter()
            entered = True
            yield
        except errors.ServiceError as e:
            code, detail, trailing = self._status(e, request_id)
        except asyncio.CancelledError:
            # gRPC cancels the handler both when the caller cancels and when its deadline passes.
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= 0
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            detail = "the call ended before the work finished"
            raise
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as e:
            code, detail, trailing = self._status(e, request_id)
            if code == grpc.StatusCode.INTERNAL:  # a service's own error kinds map to other codes
                self._log.exception("unhandled error", extra=fields(method=method))
        finally:
            if entered:
                self.calls.leave()
            elapsed = time.monotonic() - started
            self._metrics.requests.labels(method=method, code=code.name).inc()
            self._metrics.latency.labels(method=method).observe(elapsed)
            self._log.info(
                "rpc",
                extra=fields(
                    method=method, code=code.name, elapsed_s=round(elapsed, 4), **({"detail": detail} if detail else {})
                ),
            )
            REQUEST_ID.reset(token)
        if trailing is not None:
            await context.abort(code, detail, trailing)

    def _status(self, error: Exception, request_id: str) -> tuple[grpc.StatusCode, str, Any]:
        """(code, message, trailing metadata) the call ends with for `error`."""
        if self._error_status is not None:
            status = self._error_status(error)
            return status.code, status.details, status.trailing_metadata
        if isinstance(error, errors.ServiceError):
            return status_for(error), str(error), ()
        return grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})", ()

    def _wrap(self, method: str, request_id: str, behaviour: UnaryBehaviour) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with self._observed(method, request_id, context):
                return await behaviour(request, context)

        return wrapped

    def _wrap_stream(self, method: str, request_id: str, behaviour: StreamBehaviour) -> Any:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with self._observed(method, request_id, context):
                produced = behaviour(request, context)
                if inspect.isasyncgen(produced):
                    async for response in produced:
                        yield response
                else:  # a handler that writes with context.write() and returns
                    await produced

        return wrapped
