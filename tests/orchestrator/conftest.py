"""The whole stack as real local processes: tritonserver (stand-ins), the Qwen-Edit and Moondream
servers (tiny random-weight models), a fake Gemini, and the orchestrator's public service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from inpaint.v1 import image_pb2, inpaint_pb2, inpaint_pb2_grpc

from orchestrator import sample_photos
from orchestrator.client import InpaintClient
from stack.local import Ports, Stack, StackConfig
from tests.fakes.fake_gemini import FakeGemini

# A small search, so that a task takes seconds on two CPU cores: 3 global candidates (raw swap + 2),
# the best 1 refined twice locally.
SMALL_SEARCH = (
    "--search.k-global=3",
    "--search.m-global=1",
    "--search.k-local=2",
    "--refinement.num-inference-steps=2",
    "--refinement.min-edit-size=64",
    "--refinement.max-edit-size=64",
)
SECOND_MODEL = "gemini-second"


@dataclass
class LiveStack:
    stack: Stack
    gemini: FakeGemini
    task_store: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.stack.config.ports.orchestrator}"

    def stub(self) -> inpaint_pb2_grpc.InpaintServiceStub:
        return InpaintClient(self.address).stub


def image(data: bytes) -> image_pb2.Image:
    return image_pb2.Image(data=data, mime_type="image/png")


def task_images() -> inpaint_pb2.TaskImages:
    return inpaint_pb2.TaskImages(
        init_image=image(sample_photos.encode_png(sample_photos.astronaut())),
        mask=image(sample_photos.encode_png(sample_photos.astronaut_face_mask())),
        character_image=image(sample_photos.encode_png(sample_photos.tom_hanks())),
    )


def write_task(store: Path, task_id: str) -> Path:
    folder = store / task_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "init.png").write_bytes(sample_photos.encode_png(sample_photos.astronaut()))
    (folder / "mask.png").write_bytes(sample_photos.encode_png(sample_photos.astronaut_face_mask()))
    (folder / "character.png").write_bytes(sample_photos.encode_png(sample_photos.tom_hanks()))
    return folder


def start_stack(
    run_dir: Path, repository: Path, gemini: FakeGemini, task_store: Path, extra: tuple[str, ...] = ()
) -> Stack:
    config = StackConfig(
        ports=Ports.free(),
        triton_repository=repository,
        extra_orchestrator_args=(
            *SMALL_SEARCH,
            f"--gemini.base-url={gemini.base_url}",
            f"--gemini.models=gemini-first,{SECOND_MODEL}",
            "--gemini.request-timeout-s=10",
            f"--task-store={task_store}",
            *extra,
        ),
        orchestrator_env=(("GEMINI_API_KEY", "test-key-not-secret-but-never-logged"),),
        ready_timeout_s=300,
    )
    return Stack(run_dir, config).up(progress=False)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, standin_repository: Path) -> Iterator[LiveStack]:
    store = tmp_path_factory.mktemp("tasks")
    write_task(store, "71680285")
    with FakeGemini() as gemini:
        stack = start_stack(tmp_path_factory.mktemp("stack"), standin_repository, gemini, store)
        try:
            yield LiveStack(stack, gemini, store)
        finally:
            stack.down()
