"""What one operation runs: the pipeline on the request, its events as public messages, its result as bytes.

After a crash the attempt runs again on another replica from the face stage (cheap and deterministic), with
the attempt's memo (`TaskRun.memo`): every candidate generated and every score given before the crash comes
back from the store, so no candidate is generated or scored twice (`orchestrator.search.memo`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from inpaint.v1 import inpaint_pb2

from orchestrator import api
from orchestrator.config import OrchestratorConfig
from orchestrator.errors import InpaintError
from orchestrator.imaging.encode import encode_png
from orchestrator.operations.engine import RunResult, TaskFailedError, TaskRun
from orchestrator.operations.status import to_service_error
from orchestrator.pipeline import InpaintOutcome, InpaintPipeline
from orchestrator.requests import parse_request
from orchestrator.search import ProgressEvent, SearchConfigError, SearchFailedError
from orchestrator.search.memo import candidate_image_key
from orchestrator.tasks import TaskStore


class PipelineRunner:
    """Runs tasks on this replica's pipeline (one per process)."""

    def __init__(
        self,
        pipeline: InpaintPipeline,
        config: OrchestratorConfig,
        on_outcome: Callable[[InpaintOutcome], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.tasks = TaskStore(config.task_store)
        self.on_outcome = on_outcome

    async def __call__(self, run: TaskRun) -> RunResult:
        def on_event(event: ProgressEvent) -> None:
            run.on_event(api.progress(event))

        try:
            task = await asyncio.to_thread(parse_request, run.request, self.config, self.tasks, run.budget_s)
            outcome = await self.pipeline.run(task, on_event=on_event, memo=run.memo)
        except (InpaintError, SearchConfigError, SearchFailedError) as error:
            raise TaskFailedError(to_service_error(error)) from error
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        response = await asyncio.to_thread(api.response, outcome)
        # A generated candidate's PNG is already in the attempt's memo: encode only the others (the raw swap).
        # Looked up together: on an object store each is a round trip.
        kept = await asyncio.gather(*(run.memo.recall(candidate_image_key(cid)) for cid in outcome.images))
        images: dict[str, bytes] = {}
        for (cid, image), png in zip(outcome.images.items(), kept, strict=True):
            images[cid] = png if png is not None else await asyncio.to_thread(encode_png, image)
        return RunResult(response=response, candidate_images=images)


def queued_event(position: int) -> inpaint_pb2.ProgressEvent:
    return inpaint_pb2.ProgressEvent(kind=inpaint_pb2.PROGRESS_KIND_QUEUED, queue_position=position)
