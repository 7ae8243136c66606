"""Typed domain errors. Model adapters and servicers raise these; one interceptor maps them to gRPC codes.

This module does not import gRPC, so adapters that know nothing of the transport can raise them too.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error a client is meant to see. The message is safe to return to the caller."""


class InvalidArgument(ServiceError):
    """A request field is wrong. `field` is the field's path in the request (for example `seeds` or `image.data`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Unavailable(ServiceError):
    """The service cannot take the request now (model not loaded yet, or draining); retrying elsewhere may work."""


class ResourceExhausted(ServiceError):
    """The bounded queue is full; the caller should back off."""


class DeadlineExceeded(ServiceError):
    """The caller's deadline passed before the work finished; the work was stopped."""


class Cancelled(ServiceError):
    """The caller cancelled the call; the work was stopped."""


class FailedPrecondition(ServiceError):
    """The request is valid but cannot run in the server's current configuration."""


class Internal(ServiceError):
    """A bug or an unexpected failure inside the server."""
