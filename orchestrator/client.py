"""The Python client of the public API (inpaint.v1.InpaintService): the one the CLI, the demo, the
end-to-end checks, the benchmarks and the tests use.

    with InpaintClient("127.0.0.1:50050") as client:
        request = task_request(init_png, mask_png, character_png, request_id="job-1")
        response = client.stream(request, timeout_s=900, on_progress=print)

Blocking (grpc's synchronous channel); the messages are the generated `inpaint_pb2` types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType

import grpc
from inpaint.v1 import image_pb2, inpaint_pb2, inpaint_pb2_grpc

# Responses carry the final image, the mask and (on request) every candidate: far over gRPC's 4 MiB default.
MAX_RECEIVE_BYTES = 1 << 30
MAX_SEND_BYTES = 256 << 20


class StreamEndedError(RuntimeError):
    """The server closed a StreamInpaint call without sending the result."""


def timings_s(response: inpaint_pb2.InpaintResponse) -> dict[str, float]:
    """The response's per-stage timings in seconds."""
    return {name: value.ToNanoseconds() / 1e9 for name, value in response.timings.items()}


def content_request_id(*parts: bytes, prefix: str = "cli") -> str:
    """A request id derived from the inputs' content: the same inputs give the same id, whatever the file names."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f"{prefix}-{digest.hexdigest()[:32]}"


def task_request(
    init: bytes,
    mask: bytes,
    character: bytes,
    *,
    request_id: str = "",
    settings: inpaint_pb2.SearchSettings | None = None,
    return_candidate_images: bool = False,
) -> inpaint_pb2.InpaintRequest:
    """A request carrying the three encoded images inline."""
    return inpaint_pb2.InpaintRequest(
        request_id=request_id,
        images=inpaint_pb2.TaskImages(
            init_image=image_pb2.Image(data=init),
            mask=image_pb2.Image(data=mask),
            character_image=image_pb2.Image(data=character),
        ),
        settings=settings or inpaint_pb2.SearchSettings(),
        return_candidate_images=return_candidate_images,
    )


def search_settings(values: Mapping[str, float | int | None], seed: int | None = None) -> inpaint_pb2.SearchSettings:
    """SearchSettings with the given fields set (None: unset, the service's configuration applies)."""
    settings = inpaint_pb2.SearchSettings()
    for name, value in values.items():
        if value is not None:
            setattr(settings, name, value)
    if seed is not None:
        settings.seed = seed
    return settings


class InpaintClient:
    """A channel to the orchestrator and its stub. Close it (or use it as a context manager)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
                ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ],
        )
        self.stub = inpaint_pb2_grpc.InpaintServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> InpaintClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def inpaint(self, request: inpaint_pb2.InpaintRequest, timeout_s: float) -> inpaint_pb2.InpaintResponse:
        response: inpaint_pb2.InpaintResponse = self.stub.Inpaint(request, timeout=timeout_s)
        return response

    def events(
        self, request: inpaint_pb2.InpaintRequest, timeout_s: float
    ) -> Iterator[inpaint_pb2.StreamInpaintResponse]:
        """The raw stream: progress events, then one message with the result."""
        yield from self.stub.StreamInpaint(inpaint_pb2.StreamInpaintRequest(request=request), timeout=timeout_s)

    def stream(
        self,
        request: inpaint_pb2.InpaintRequest,
        timeout_s: float,
        on_progress: Callable[[inpaint_pb2.ProgressEvent], None] | None = None,
    ) -> inpaint_pb2.InpaintResponse:
        """StreamInpaint: every progress event to `on_progress`, then the result."""
        for message in self.events(request, timeout_s):
            if message.HasField("progress"):
                if on_progress is not None:
                    on_progress(message.progress)
            else:
                return message.result
        raise StreamEndedError("the stream ended without a result")
