"""The InsightFace models served by Triton, reached over gRPC (KServe v2).

`TritonSession` presents a Triton model with the small part of onnxruntime's InferenceSession that
insightface's model classes use (get_inputs, get_outputs, run), so insightface's own SCRFD decoding,
thresholds and NMS run unchanged on Triton's outputs; the orchestrator needs no weight files.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from orchestrator.errors import DeadlineExceededError, ModelUnavailableError
from orchestrator.search.deadline import Deadline
from servers.common.interceptor import REQUEST_ID_KEY
from servers.triton.contracts import ARCFACE_W600K, DET_10G, INSWAPPER_128, LANDMARK_2D106

# Images travel as float32 tensors: a 1280x1280 detection input alone is ~20 MB, over gRPC's 4 MiB default.
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class TritonModelNames:
    detector: str = DET_10G.triton_name
    landmarks: str = LANDMARK_2D106.triton_name
    recognition: str = ARCFACE_W600K.triton_name
    swapper: str = INSWAPPER_128.triton_name

    def all(self) -> tuple[str, ...]:
        return (self.detector, self.landmarks, self.recognition, self.swapper)


@dataclass(frozen=True)
class TritonConfig:
    url: str = "127.0.0.1:8001"
    timeout_s: float = 30.0  # per inference; a request deadline, when shorter, wins
    models: TritonModelNames = field(default_factory=TritonModelNames)
    # How long the service waits at start-up for the face models (Triton may start after it).
    startup_wait_s: float = 600.0
    # The model repository, when local: read to report which models are stand-ins.
    repository: Path | None = None
    # The repository's max_batch_size: a call with more items (a crowd of faces) is sent in chunks.
    max_batch: int = 32


@dataclass(frozen=True)
class TensorInfo:
    """onnxruntime NodeArg look-alike: dynamic dimensions are None."""

    name: str
    shape: list[int | None]
    datatype: str


class TritonModels:
    """A gRPC client for the face models on one Triton server. Thread-safe."""

    def __init__(self, config: TritonConfig = TritonConfig()) -> None:
        self.config = config
        self.client = triton_grpc.InferenceServerClient(
            config.url,
            channel_args=[
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.lb_policy_name", "round_robin"),
            ],
        )
        self._metadata: dict[str, Any] = {}
        self._lock = threading.Lock()
        # Sent with every inference (as `x-request-id` metadata and the KServe request id); see for_request.
        self.request_id = ""

    def for_request(self, request_id: str) -> TritonModels:
        """This client as one request uses it: the same channel and caches, every inference tagged with its id."""
        scoped = copy.copy(self)
        scoped.request_id = request_id
        return scoped

    def close(self) -> None:
        self.client.close()

    def check_ready(self) -> None:
        """Raise ModelUnavailableError naming every face model Triton does not report ready."""
        missing = []
        for name in self.config.models.all():
            try:
                if not self.client.is_model_ready(name, client_timeout=self.config.timeout_s):
                    missing.append(name)
            except InferenceServerException as exc:
                raise ModelUnavailableError("triton", f"{self.config.url} did not answer ({exc.message()})") from exc
        if missing:
            raise ModelUnavailableError("triton", f"models not ready on {self.config.url}: {', '.join(missing)}")

    def serves(self, model: str) -> bool:
        """Whether Triton has the model loaded and ready (a model the service can do without)."""
        try:
            return bool(self.client.is_model_ready(model, client_timeout=self.config.timeout_s))
        except InferenceServerException:
            return False

    def metadata(self, model: str) -> Any:
        with self._lock:
            if model not in self._metadata:
                try:
                    self._metadata[model] = self.client.get_model_metadata(model, client_timeout=self.config.timeout_s)
                except InferenceServerException as exc:
                    raise ModelUnavailableError(model, f"no metadata from {self.config.url} ({exc.message()})") from exc
            return self._metadata[model]

    def forget_metadata(self, model: str) -> None:
        """Read the model's metadata again on next use (its repository may have been prepared anew)."""
        with self._lock:
            self._metadata.pop(model, None)

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: list[str], deadline: Deadline | None = None
    ) -> dict[str, np.ndarray]:
        """Run an inference, cut to the deadline; float32 (or uint8 pixels) in, numpy out. Failures become
        ModelUnavailableError.

        Inputs with more items than the repository's max_batch_size go in chunks, their outputs concatenated.
        """
        size = min((len(a) for a in inputs.values()), default=0)
        if size > self.config.max_batch and all(len(a) == size for a in inputs.values()):
            step = self.config.max_batch
            parts = [
                self._infer(model, {k: a[i : i + step] for k, a in inputs.items()}, outputs, deadline)
                for i in range(0, size, step)
            ]
            return {n: np.concatenate([p[n] for p in parts]) for n in outputs}
        return self._infer(model, inputs, outputs, deadline)

    def _infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: list[str], deadline: Deadline | None
    ) -> dict[str, np.ndarray]:
        request = []
        served = {t.name: t.datatype for t in self.metadata(model).inputs}
        for name, array in inputs.items():
            pixels = served.get(name) == "UINT8"  # a model that takes pixels (det_10g); the others take float32
            if pixels and array.dtype != np.uint8:
                raise ValueError(f"{model} input {name!r} takes uint8 pixels, got {array.dtype}")
            array = np.ascontiguousarray(array, dtype=np.uint8 if pixels else np.float32)
            tensor = triton_grpc.InferInput(name, list(array.shape), "UINT8" if pixels else "FP32")
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        wanted = [triton_grpc.InferRequestedOutput(n) for n in outputs]
        deadline = deadline or Deadline.never()
        timeout = min(self.config.timeout_s, deadline.remaining())
        limited = timeout < self.config.timeout_s
        if timeout <= 0:
            raise DeadlineExceededError(f"no time left for {model}")
        try:
            result = self.client.infer(
                model,
                request,
                outputs=wanted,
                client_timeout=timeout,
                request_id=self.request_id,
                headers={REQUEST_ID_KEY: self.request_id} if self.request_id else None,
            )
        except InferenceServerException as exc:
            if limited and "Deadline" in (exc.message() or ""):
                raise DeadlineExceededError(f"{model} did not answer before the request's deadline") from exc
            raise ModelUnavailableError(model, f"inference failed on {self.config.url}: {exc.message()}") from exc
        return {n: result.as_numpy(n) for n in outputs}

    def inference_statistics(self, model: str) -> tuple[int, int]:
        """(inference_count, execution_count) since the model loaded; fewer executions = batching."""
        stats = self.client.get_inference_statistics(model).model_stats[0]
        return int(stats.inference_count), int(stats.execution_count)

    def session(
        self, model: str, deadline: Deadline | None = None, pixels: tuple[float, float] | None = None
    ) -> TritonSession:
        return TritonSession(self, model, deadline, pixels)


class TritonSession:
    """The slice of onnxruntime.InferenceSession that insightface calls; its calls end by the deadline.

    `pixels` (mean, std): how the insightface class normalised the image it feeds, x = (pixel - mean) / std.
    Where the served model takes uint8 pixels (it normalises them itself), the feed goes back to the pixels,
    exactly (SCRFD's 127.5 and 1/128 are exact in float32), and travels as a quarter of the bytes.
    """

    def __init__(
        self,
        models: TritonModels,
        model: str,
        deadline: Deadline | None = None,
        pixels: tuple[float, float] | None = None,
    ) -> None:
        self.models = models
        self.model = model
        self.deadline = deadline
        self.pixels = pixels
        meta = models.metadata(model)
        self._inputs = [self._info(t) for t in meta.inputs]
        self._outputs = [self._info(t) for t in meta.outputs]

    @staticmethod
    def _info(tensor: Any) -> TensorInfo:
        return TensorInfo(tensor.name, [int(d) if d >= 0 else None for d in tensor.shape], tensor.datatype)

    def get_inputs(self) -> list[TensorInfo]:
        return self._inputs

    def get_outputs(self) -> list[TensorInfo]:
        return self._outputs

    def get_providers(self) -> list[str]:
        return ["TritonInferenceServer"]

    def set_providers(self, providers: list[str]) -> None:
        """Where the model runs is Triton's configuration, not the client's."""

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = output_names or [o.name for o in self._outputs]
        before = self._pixel_inputs()
        try:
            return self._run(names, feed, before)
        except ModelUnavailableError:
            # Triton's repository may have been prepared anew since its metadata was read (a rollout that
            # changed what the model takes): read it again and, where that changed, ask once more.
            self.models.forget_metadata(self.model)
            now = self._pixel_inputs()
            if now == before:
                raise
            return self._run(names, feed, now)

    def _pixel_inputs(self) -> set[str]:
        return {t.name for t in self.models.metadata(self.model).inputs if t.datatype == "UINT8"}

    def _run(self, names: list[str], feed: dict[str, np.ndarray], pixel_inputs: set[str]) -> list[np.ndarray]:
        if pixel_inputs:
            if self.pixels is None:
                raise ValueError(f"{self.model} takes uint8 pixels: the session needs the feed's (mean, std)")
            feed = {k: as_pixels(v, *self.pixels) if k in pixel_inputs else v for k, v in feed.items()}
        out = self.models.infer(self.model, feed, names, self.deadline)
        return [out[n] for n in names]


def as_pixels(normalised: np.ndarray, mean: float, std: float) -> np.ndarray:
    """The uint8 pixels x that gave `normalised` = (x - mean) / std (OpenCV, one pass: rounded, then the absolute
    value saturated to 0..255; exact for values that came from pixels)."""
    flat = np.ascontiguousarray(normalised, dtype=np.float32).reshape(-1, normalised.shape[-1])
    return cv2.convertScaleAbs(flat, alpha=std, beta=mean).reshape(normalised.shape)
