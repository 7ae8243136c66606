"""Domain errors of the Moondream server, on top of the shared ones (mapped to gRPC codes in servers.common)."""

from __future__ import annotations

from servers.common.errors import FailedPrecondition, InvalidArgument


class InvalidImageError(InvalidArgument):
    """An image field could not be used: empty, undecodable, unsupported type or too large."""


class ModelLoadError(FailedPrecondition):
    """The model directory is missing something the adapter needs, or was fetched at another revision."""
