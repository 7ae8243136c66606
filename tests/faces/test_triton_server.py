"""A real tritonserver serves every model with the right shapes, batches, and stops cleanly."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from orchestrator.errors import ModelUnavailableError
from orchestrator.faces.triton_client import TritonConfig, TritonModels, TritonSession, as_pixels
from servers.triton.contracts import ALL_MODELS, DET_10G, ModelContract
from stack.process import live_group_members
from stack.triton import TritonServer, TritonServerConfig, TritonStartError
from tests.conftest import settled_statistics

pytestmark = pytest.mark.triton


def _feeds(contract: ModelContract, rng: np.random.Generator, batch: int = 1) -> dict[str, np.ndarray]:
    feeds = {}
    for spec in contract.inputs:
        shape = [batch if (i == 0 and d == -1) else (320 if d == -1 else d) for i, d in enumerate(spec.shape)]
        pixels = spec.dtype == np.uint8
        feeds[spec.name] = (
            rng.integers(0, 256, shape, dtype=np.uint8) if pixels else rng.random(shape, dtype=np.float32)
        )
    return feeds


@pytest.mark.parametrize("contract", ALL_MODELS, ids=lambda c: c.triton_name)
def test_every_model_answers_with_the_contract_shapes(triton_models: TritonModels, contract: ModelContract) -> None:
    batch = 3 if contract.batchable else 1
    out = triton_models.infer(
        contract.triton_name, _feeds(contract, np.random.default_rng(0), batch), [s.name for s in contract.outputs]
    )
    for spec in contract.outputs:
        got = out[spec.name]
        assert got.dtype == np.float32 and len(got.shape) == len(spec.shape)
        for axis, (g, want) in enumerate(zip(got.shape, spec.shape)):
            if contract.batchable and axis == 0:
                assert g == batch
            elif want != -1:
                assert g == want


def test_detector_emits_two_anchors_per_cell_per_stride(triton_models: TritonModels) -> None:
    out = triton_models.infer(
        "det_10g", {"input.1": np.zeros((1, 3, 320, 256), np.uint8)}, [s.name for s in DET_10G.outputs]
    )
    for stride, name in zip((8, 16, 32), ("448", "471", "494")):
        assert out[name].shape == (1, (320 // stride) * (256 // stride) * 2, 1)


@pytest.mark.parametrize("contract", [c for c in ALL_MODELS if c.batchable], ids=lambda c: c.triton_name)
def test_concurrent_requests_are_batched_by_triton(triton_models: TritonModels, contract: ModelContract) -> None:
    """Every face model but inswapper (whose requests carry their own batch) is batched across requests:
    concurrent swaps' detections, landmarks, embeddings and face crops share executions."""
    model = contract.triton_name
    before = settled_statistics(triton_models, model)
    rng = np.random.default_rng(2)
    items = [_feeds(contract, rng) for _ in range(24)]
    names = [s.name for s in contract.outputs]
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda feeds: triton_models.infer(model, feeds, names), items))
    after = settled_statistics(triton_models, model)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 24
    assert executions < inferences, f"{executions} executions for {inferences} inferences: no batching happened"
    # Batching must not mix up whose answer is whose.
    alone = triton_models.infer(model, items[5], names)
    for name in names:
        np.testing.assert_allclose(results[5][name], alone[name], rtol=1e-4, atol=1e-4)


def test_readiness_of_every_face_model(triton_models: TritonModels) -> None:
    triton_models.check_ready()


def test_an_unreachable_server_is_reported_as_unavailable() -> None:
    from stack.process import free_port

    models = TritonModels(TritonConfig(url=f"127.0.0.1:{free_port()}", timeout_s=2.0))
    with pytest.raises(ModelUnavailableError, match="triton"):
        models.check_ready()
    with pytest.raises(ModelUnavailableError, match="w600k_r50"):
        models.infer("w600k_r50", {"input.1": np.zeros((1, 3, 112, 112), np.float32)}, ["683"])


def test_stop_leaves_no_process_and_no_shared_memory(standin_repository: Path, tmp_path: Path) -> None:
    config = TritonServerConfig.on_free_ports(repository=standin_repository, log_file=tmp_path / "log")
    server = TritonServer(config).start()
    assert server.process is not None
    pgid = server.process.pid
    assert server.shm_regions(), "the python backend should hold shared-memory regions while serving"
    assert len(live_group_members(pgid)) >= 2  # the server and its python-backend stubs
    server.stop()
    assert server.process.poll() is not None
    assert live_group_members(pgid) == []
    assert server.shm_regions() == []


def test_a_killed_server_leaves_nothing_behind_after_stop(standin_repository: Path, tmp_path: Path) -> None:
    config = TritonServerConfig.on_free_ports(repository=standin_repository, log_file=tmp_path / "log")
    server = TritonServer(config).start()
    assert server.process is not None
    server.process.kill()  # no chance to clean up: stubs and /dev/shm regions stay
    server.process.wait()
    server.stop()
    assert live_group_members(server.process.pid) == []
    assert server.shm_regions() == []


def test_a_model_that_fails_to_load_keeps_the_server_from_being_ready(standin_repository: Path, tmp_path: Path) -> None:
    broken = tmp_path / "repo"
    shutil.copytree(standin_repository, broken)
    (broken / "w600k_r50" / "1" / "model.onnx").write_bytes(b"broken")
    config = TritonServerConfig.on_free_ports(repository=broken, log_file=tmp_path / "log", ready_timeout_s=20)
    with pytest.raises(TritonStartError, match="w600k_r50"):
        TritonServer(config).start()


def test_the_detector_session_sends_back_exactly_the_pixels_scrfd_normalised() -> None:
    """insightface's SCRFD normalises the letterboxed image itself (blobFromImage, mean 127.5, scale 1/128);
    the served detector takes the pixels, so the session undoes it: every value of every channel, exactly."""
    bgr = np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    bgr.reshape(-1)[:256] = np.arange(256, dtype=np.uint8)  # every value at least once
    mean, std = DET_10G.pixel_input or (0.0, 1.0)
    blob = cv2.dnn.blobFromImage(bgr, 1.0 / std, (96, 64), (mean, mean, mean), swapRB=True)
    pixels = as_pixels(blob, mean, std)
    assert pixels.dtype == np.uint8 and pixels.shape == blob.shape
    np.testing.assert_array_equal(pixels[0], bgr[..., ::-1].transpose(2, 0, 1))


@pytest.mark.parametrize("served", ["UINT8", "FP32"])
def test_the_detector_session_sends_what_the_served_model_takes(served: str) -> None:
    """A repository prepared by this release takes pixels; one prepared before it takes SCRFD's float blob.
    The session reads which from Triton's metadata, so an orchestrator serves either."""
    models = FakeDetectorModels(served)
    session = TritonSession(models, "det_10g", pixels=(127.5, 128.0))  # type: ignore[arg-type]
    blob = _blob_of(200)
    session.run(None, {"input.1": blob})
    if served == "UINT8":
        assert models.sent[-1].dtype == np.uint8 and (models.sent[-1] == 200).all()
    else:
        assert models.sent[-1] is blob


def test_a_detector_session_follows_a_repository_prepared_anew_while_it_runs() -> None:
    """An orchestrator that read FP32 before Triton's repository was prepared again (a rollout) is refused once,
    reads the metadata again and sends pixels; a refusal with unchanged metadata is the caller's to see."""
    models = FakeDetectorModels("FP32")
    session = TritonSession(models, "det_10g", pixels=(127.5, 128.0))  # type: ignore[arg-type]
    session.run(None, {"input.1": _blob_of(10)})
    models.served = "UINT8"  # the repository is replaced; the session's metadata is the old one
    session.run(None, {"input.1": _blob_of(20)})
    assert [a.dtype for a in models.sent] == [np.float32, np.uint8] and (models.sent[-1] == 20).all()
    models.refuse_all = True
    with pytest.raises(ModelUnavailableError):
        session.run(None, {"input.1": _blob_of(30)})


def _blob_of(value: int) -> np.ndarray:
    image = np.full((32, 32, 3), value, np.uint8)
    return cv2.dnn.blobFromImage(image, 1 / 128, (32, 32), (127.5, 127.5, 127.5), swapRB=True)


class FakeDetectorModels:
    """TritonModels as a session sees it: metadata read once and kept until forgotten; Triton refuses an
    input of another type than the served one (as tritonserver does)."""

    def __init__(self, served: str) -> None:
        self.served = served
        self.known: str | None = None
        self.sent: list[np.ndarray] = []
        self.refuse_all = False

    def metadata(self, model: str) -> SimpleNamespace:
        self.known = self.known or self.served
        tensor = SimpleNamespace(name="input.1", shape=[-1, 3, -1, -1], datatype=self.known)
        return SimpleNamespace(
            inputs=[tensor], outputs=[SimpleNamespace(name="448", shape=[-1, -1, 1], datatype="FP32")]
        )

    def forget_metadata(self, model: str) -> None:
        self.known = None

    def infer(
        self, model: str, feed: dict[str, np.ndarray], names: list[str], deadline: object
    ) -> dict[str, np.ndarray]:
        array = feed["input.1"]
        if self.refuse_all or (array.dtype == np.uint8) != (self.served == "UINT8"):
            raise ModelUnavailableError(model, f"inference failed: expected {self.served}, got {array.dtype}")
        self.sent.append(array)
        return {n: np.zeros((1, 1, 1), np.float32) for n in names}
