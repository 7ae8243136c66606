"""Errors as data: domain errors to status codes (once), and each status with google.rpc details.

    raise TaskFailedError(to_service_error(error))     # in a task: the operation records the code and field
    ModelServer(name, config, error_status=error_status)  # a server: each failed call ends with rich details

Every status carries ErrorInfo (a reason, the domain `inpaint.v1`); INVALID_ARGUMENT a BadRequest naming
the field; RESOURCE_EXHAUSTED and UNAVAILABLE a RetryInfo. Messages are bounded (1024 characters), so an
oversized input echoed into an error can never push the status past gRPC's metadata limit.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]

from orchestrator.errors import DeadlineExceededError, InvalidInputError, ModelUnavailableError, NoFaceError
from orchestrator.search import SearchConfigError
from servers.common import errors as service_errors
from servers.common.auth import DOMAIN
from servers.common.interceptor import STATUS_BY_ERROR, status_for

MESSAGE_LIMIT = 1024
# How long a client should wait before retrying a busy or unavailable service.
RETRY_AFTER_S = 5


class NotFoundError(service_errors.ServiceError):
    """No such operation (never submitted, deleted, or expired). Maps to NOT_FOUND."""


def bounded(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else f"{text[: limit - 30]}... ({len(text)} characters)"


def to_service_error(error: Exception) -> service_errors.ServiceError:
    """Domain errors to the scaffolding's typed errors (which map to status codes)."""
    if isinstance(error, service_errors.ServiceError):
        return error
    if isinstance(error, InvalidInputError):
        return service_errors.InvalidArgument(error.field, bounded(error.problem))
    if isinstance(error, SearchConfigError):
        return service_errors.InvalidArgument(f"settings.{error.field}", bounded(error.problem))
    if isinstance(error, NoFaceError):
        return service_errors.FailedPrecondition(bounded(str(error)))
    if isinstance(error, ModelUnavailableError):
        return service_errors.Unavailable(bounded(str(error)))
    if isinstance(error, DeadlineExceededError):
        return service_errors.DeadlineExceeded(bounded(str(error)))
    return service_errors.Internal(bounded(f"{type(error).__name__}: {error}"))


def code_of(error: service_errors.ServiceError) -> grpc.StatusCode:
    if isinstance(error, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    return status_for(error)


def reason_of(error: service_errors.ServiceError) -> str:
    return code_of(error).name


def error_from_code(code: int, message: str, field: str = "") -> service_errors.ServiceError:
    """The typed error of a recorded status code (an operation's error, raised again to a caller)."""
    if code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and field:
        problem = message.removeprefix(f"{field}: ")
        return service_errors.InvalidArgument(field, problem)
    if code == grpc.StatusCode.NOT_FOUND.value[0]:
        return NotFoundError(message)
    for kind, status in STATUS_BY_ERROR.items():
        if status.value[0] == code:
            return kind(message)
    return service_errors.Internal(message)


def rich_status(error: service_errors.ServiceError) -> Any:
    """A grpc.Status whose trailing metadata holds the google.rpc.Status with its details."""
    code = code_of(error)
    message = bounded(str(error))
    details = [error_details_pb2.ErrorInfo(reason=reason_of(error), domain=DOMAIN)]
    if isinstance(error, service_errors.InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=error.field, description=bounded(error.problem))
                ]
            )
        )
    if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_AFTER_S)))
    packed = []
    for detail in details:
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        packed.append(wrapped)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=packed))


def error_status(error: Exception) -> Any:
    """Any error of a public call as its status with google.rpc details (the server's interceptor ends the
    call with it): domain errors by their kind, anything else INTERNAL naming it."""
    return rich_status(to_service_error(error))
