"""A task runner without model servers: it "generates" candidates through the attempt's memo, as the pipeline does.

Each candidate is remembered in the attempt's durable memo (`TaskRun.memo`, the same store the pipeline's
candidates and scores go to); every real generation
is appended to `log` (a file, so that replicas in other processes share it), and `gate` (a file that
must exist) or `per_candidate_gates/<id>` holds the runner before each candidate, so a test decides when work may go on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from inpaint.v1 import image_pb2, inpaint_pb2

from orchestrator.operations.engine import RunResult, TaskFailedError, TaskRun
from orchestrator.search.memo import candidate_image_key
from servers.common import errors as service_errors


@dataclass
class FakeRunner:
    log: Path
    candidates: int = 3
    gate: Path | None = None
    # A folder: candidate <id> is generated only once the file <folder>/<id> exists.
    per_candidate_gates: Path | None = None
    degraded: bool = False
    poll_s: float = 0.02
    fail_with: service_errors.ServiceError | None = None
    started: list[str] = field(default_factory=list)

    async def _wait_for_gate(self, candidate_id: str) -> None:
        while self.gate is not None and not self.gate.exists():
            await asyncio.sleep(self.poll_s)
        while self.per_candidate_gates is not None and not (self.per_candidate_gates / candidate_id).exists():
            await asyncio.sleep(self.poll_s)

    async def __call__(self, run: TaskRun) -> RunResult:
        request_id = run.request.request_id
        self.started.append(request_id)
        if self.fail_with is not None:
            raise TaskFailedError(self.fail_with)
        images: dict[str, bytes] = {}
        for index in range(self.candidates):
            candidate_id = f"g{index}"
            await self._wait_for_gate(candidate_id)
            recalled = await run.memo.recall(candidate_image_key(candidate_id))
            if recalled is None:
                with self.log.open("a") as file:
                    file.write(f"{request_id} {candidate_id}\n")
                recalled = f"png of {candidate_id}".encode()
                await run.memo.record(candidate_image_key(candidate_id), recalled)
            images[candidate_id] = recalled
            run.on_event(
                inpaint_pb2.ProgressEvent(
                    kind=inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED,
                    candidate_id=candidate_id,
                    planned=self.candidates,
                    scored=index + 1,
                )
            )
        response = inpaint_pb2.InpaintResponse(
            request_id=request_id,
            image=image_pb2.Image(data=run.request.images.init_image.data),
            best_candidate_id="g0",
            degraded=self.degraded,
            notes=["cut short"] if self.degraded else [],
        )
        return RunResult(response=response, candidate_images=images)


def generated(log: Path) -> list[str]:
    return log.read_text().split("\n")[:-1] if log.exists() else []
