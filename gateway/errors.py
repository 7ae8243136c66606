"""gRPC statuses as HTTP errors: the status code mapped as google.rpc.Code documents it, the body in Google's
JSON error format with the same google.rpc details the gRPC port attaches (ErrorInfo, BadRequest, RetryInfo).

    {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "settings.k_global: ...",
               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": ..., ...}, ...]}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from orchestrator.operations.status import rich_status
from servers.common.errors import InvalidArgument

DETAILS_KEY = "grpc-status-details-bin"

# google/rpc/code.proto, each code's "HTTP Mapping".
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


@dataclass(frozen=True)
class HttpError:
    """What the gateway answers for a failed call: the HTTP status, the JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def http_error(code: grpc.StatusCode, message: str, details: list[any_pb2.Any] | None = None) -> HttpError:
    """The HTTP form of a status; `details` are the google.rpc details as the gRPC port sent them."""
    status = status_pb2.Status(code=code.value[0], message=message, details=details or [])
    body = json_format.MessageToDict(status, preserving_proto_field_name=True)
    headers: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            headers["Retry-After"] = str(max(retry.retry_delay.seconds, 1))
    if code == grpc.StatusCode.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = 'Bearer realm="inpaint"'
    return HttpError(
        HTTP_STATUS.get(code, 500),
        {
            "error": {
                "code": HTTP_STATUS.get(code, 500),
                "status": code.name,
                "message": message,
                "details": body.get("details", []),
            }
        },
        headers,
    )


def _from_trailers(code: grpc.StatusCode, message: str, trailing_metadata: Any) -> HttpError:
    """A status with its google.rpc details read from the trailing metadata it came with."""
    details: list[any_pb2.Any] = []
    for key, value in trailing_metadata or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            details = list(status_pb2.Status.FromString(value).details)
    return http_error(code, message, details)


def from_rpc_error(error: grpc.aio.AioRpcError) -> HttpError:
    """The status a call ended with, with its google.rpc details."""
    return _from_trailers(error.code(), error.details() or "", error.trailing_metadata())


def bad_request(field_path: str, problem: str) -> HttpError:
    """A request the gateway cannot turn into a message (bad JSON, an unknown field): INVALID_ARGUMENT
    built by the gRPC port's own code (orchestrator/operations/status.py), so it carries the same ErrorInfo
    and BadRequest details and the same bound on the message's length."""
    status = rich_status(InvalidArgument(field_path, problem))
    return _from_trailers(status.code, status.details, status.trailing_metadata)
