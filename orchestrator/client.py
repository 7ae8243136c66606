"""The Python client of the public API (inpaint.v1.InpaintService and OperationsService): the one the CLI,
the demo, the end-to-end checks, the benchmarks and the tests use.

    with InpaintClient("127.0.0.1:50050") as client:
        request = task_request(init_png, mask_png, character_png, request_id="job-1")
        response = client.stream(request, timeout_s=900, on_progress=print)

Blocking (grpc's synchronous channel); the messages are the generated `inpaint_pb2` types.

A replica can go away under a call (a rollout's SIGTERM, a node lost): the call ends UNAVAILABLE. The task
does not: it is durable and another replica takes it over. So `stream` and `watch` call again (the same
request id joins the same task; a watch replays the story so far) until the result comes or their time is
up, skipping the progress already delivered. Give the client an address that reaches more than one replica
(a Kubernetes Service, or `ipv4:host:port,host:port`) for the retry to find another.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType

import grpc
from inpaint.v1 import image_pb2, inpaint_pb2, inpaint_pb2_grpc, operations_pb2, operations_pb2_grpc

# Responses carry the final image, the mask and (on request) every candidate: far over gRPC's 4 MiB default.
MAX_RECEIVE_BYTES = 1 << 30
MAX_SEND_BYTES = 256 << 20
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.max_send_message_length", MAX_SEND_BYTES),
]


class StreamEndedError(RuntimeError):
    """The server closed a StreamInpaint call without sending the result."""


# Codes after which calling again can succeed: the replica was stopping or unreachable; the task lives on.
RECONNECT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
RECONNECT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0)


def _reconnecting(
    open_stream: Callable[[float], Iterator[object]], timeout_s: float, on_reconnect: Callable[[grpc.RpcError], None]
) -> Iterator[object]:
    """The messages of `open_stream(remaining_s)`, opened again after an UNAVAILABLE until `timeout_s` is spent.

    Each new stream replays what the earlier ones delivered; the caller skips it."""
    deadline = time.monotonic() + timeout_s
    failures = 0
    while True:
        try:
            yield from open_stream(max(deadline - time.monotonic(), 0.001))
            return
        except grpc.RpcError as error:
            pause = RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)]
            if error.code() not in RECONNECT_CODES or time.monotonic() + pause >= deadline:
                raise
            on_reconnect(error)
            failures += 1
            time.sleep(pause)


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
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = inpaint_pb2_grpc.InpaintServiceStub(self.channel)
        self.operations = operations_pb2_grpc.OperationsServiceStub(self.channel)
        # How many times a stream or watch was opened again after its replica went away.
        self.reconnects = 0

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
        """The raw stream: progress events, then one message with the result (one call, no reconnection)."""
        yield from self.stub.StreamInpaint(inpaint_pb2.StreamInpaintRequest(request=request), timeout=timeout_s)

    def stream(
        self,
        request: inpaint_pb2.InpaintRequest,
        timeout_s: float,
        on_progress: Callable[[inpaint_pb2.ProgressEvent], None] | None = None,
    ) -> inpaint_pb2.InpaintResponse:
        """StreamInpaint: every progress event to `on_progress` once, then the result.

        A stream cut by its replica going away is opened again with the same request (give it a request id:
        the same id joins the same task), which replays the progress so far; what was delivered is skipped."""
        if not request.request_id:
            return self._stream_once(request, timeout_s, on_progress)
        delivered = 0
        seen = 0

        def opened(remaining_s: float) -> Iterator[object]:
            nonlocal seen
            seen = 0
            yield from self.events(request, remaining_s)

        for message in _reconnecting(opened, timeout_s, self._count_reconnect):
            assert isinstance(message, inpaint_pb2.StreamInpaintResponse)
            if not message.HasField("progress"):
                return message.result
            if message.progress.kind != inpaint_pb2.PROGRESS_KIND_QUEUED:  # queue positions are not replayed
                seen += 1
                if seen <= delivered:
                    continue
                delivered = seen
            if on_progress is not None:
                on_progress(message.progress)
        raise StreamEndedError("the stream ended without a result")

    def _stream_once(
        self,
        request: inpaint_pb2.InpaintRequest,
        timeout_s: float,
        on_progress: Callable[[inpaint_pb2.ProgressEvent], None] | None,
    ) -> inpaint_pb2.InpaintResponse:
        for message in self.events(request, timeout_s):
            if message.HasField("progress"):
                if on_progress is not None:
                    on_progress(message.progress)
            else:
                return message.result
        raise StreamEndedError("the stream ended without a result")

    def submit(
        self, request: inpaint_pb2.InpaintRequest, timeout_s: float = 60.0, fresh_run: bool = False
    ) -> operations_pb2.Operation:
        """SubmitInpaint: the operation, at once (queued or already running)."""
        operation: operations_pb2.Operation = self.operations.SubmitInpaint(
            operations_pb2.SubmitInpaintRequest(request=request, fresh_run=fresh_run), timeout=timeout_s
        )
        return operation

    def get(self, name: str, timeout_s: float = 60.0) -> operations_pb2.Operation:
        """GetOperation."""
        operation: operations_pb2.Operation = self.operations.GetOperation(
            operations_pb2.GetOperationRequest(name=name), timeout=timeout_s
        )
        return operation

    def watch(
        self,
        name: str,
        timeout_s: float,
        on_event: Callable[[operations_pb2.OperationEvent], None] | None = None,
    ) -> operations_pb2.Operation:
        """WatchOperation until the operation is done; returns it. Reconnects when its replica goes away.

        Progress events reach `on_event` once each (a reconnected watch replays the story: what was delivered
        is skipped); queue positions, which are not part of the story, every time they come."""
        delivered = 0
        seen = 0

        def opened(remaining_s: float) -> Iterator[object]:
            nonlocal seen
            seen = 0
            yield from self.operations.WatchOperation(
                operations_pb2.WatchOperationRequest(name=name), timeout=remaining_s
            )

        for event in _reconnecting(opened, timeout_s, self._count_reconnect):
            assert isinstance(event, operations_pb2.OperationEvent)
            if event.HasField("done"):
                return event.done
            if event.HasField("progress"):
                seen += 1
                if seen <= delivered:
                    continue
                delivered = seen
            if on_event is not None:
                on_event(event)
        raise StreamEndedError(f"the watch of {name} ended before the operation was done")

    def _count_reconnect(self, error: grpc.RpcError) -> None:
        self.reconnects += 1
