"""Typed domain errors. The public service maps them to gRPC status codes in one place."""

from __future__ import annotations


class InpaintError(Exception):
    """Base of every error this service raises on purpose."""


class InvalidInputError(InpaintError):
    """A request field is unusable. Maps to INVALID_ARGUMENT."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NoFaceError(InpaintError):
    """No usable face in one of the images. Maps to FAILED_PRECONDITION."""

    def __init__(self, image: str, detail: str = "no face was detected") -> None:
        self.image = image
        super().__init__(f"{image}: {detail}")


class DeadlineExceededError(InpaintError):
    """The request's deadline passed before there was any result to return. Maps to DEADLINE_EXCEEDED."""


class ModelUnavailableError(InpaintError):
    """A model server cannot be reached or failed. Maps to UNAVAILABLE."""

    def __init__(self, model: str, detail: str) -> None:
        self.model = model
        super().__init__(f"{model} is unavailable: {detail}")
