"""Domain errors map to gRPC codes in one place; cancellation tokens carry deadlines and cancels."""

from __future__ import annotations

import time

import grpc
import pytest

from servers.common import errors
from servers.common.cancellation import CancelToken
from servers.common.interceptor import status_for


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument("seeds", "is empty"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.Unavailable("loading"), grpc.StatusCode.UNAVAILABLE),
        (errors.ResourceExhausted("busy"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.DeadlineExceeded("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Cancelled("gone"), grpc.StatusCode.CANCELLED),
        (errors.FailedPrecondition("no model"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Internal("bug"), grpc.StatusCode.INTERNAL),
        (errors.ServiceError("unclassified"), grpc.StatusCode.INTERNAL),
    ],
)
def test_each_domain_error_has_one_status_code(error: errors.ServiceError, code: grpc.StatusCode) -> None:
    assert status_for(error) == code


def test_subclasses_inherit_their_parents_code() -> None:
    class ImageTooLarge(errors.InvalidArgument):
        pass

    assert status_for(ImageTooLarge("image.data", "too large")) == grpc.StatusCode.INVALID_ARGUMENT


def test_invalid_argument_message_starts_with_the_field() -> None:
    error = errors.InvalidArgument("neighbourhood.parent_weight", "must be in [0, 1)")

    assert str(error) == "neighbourhood.parent_weight: must be in [0, 1)"
    assert error.field == "neighbourhood.parent_weight"


def test_token_without_deadline_passes_until_cancelled() -> None:
    token = CancelToken()
    token.check()
    assert token.remaining_s() is None

    token.cancel("the caller left")

    assert token.stopped
    with pytest.raises(errors.Cancelled, match="the caller left"):
        token.check()


def test_token_deadline_expires() -> None:
    token = CancelToken(timeout_s=0.05)
    token.check()
    remaining = token.remaining_s()
    assert remaining is not None and 0 < remaining <= 0.05

    time.sleep(0.06)  # the deadline itself is what is under test

    with pytest.raises(errors.DeadlineExceeded):
        token.check()
