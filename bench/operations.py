"""What the durable operations layer costs: submit-to-first-progress latency and the store's overhead per
candidate, on SQLite and on PostgreSQL.

    python -m bench.operations [--tasks 20] [--candidates 20] --out bench/results/operations.json

The engine runs for real (DBOS, its system database, the progress table, the blob store); the task runner is
a stand-in that does no model work, so what is measured is the layer itself. Per candidate the pipeline
records its image (a 512x512 PNG's worth of bytes) and its score in the attempt's memo and one progress event;
the runner times exactly that. PostgreSQL is a real server this benchmark starts and stops (as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from inpaint.v1 import image_pb2, inpaint_pb2

from orchestrator.operations.config import OperationsConfig
from orchestrator.operations.engine import OperationsEngine, RunResult, TaskRun
from tests.operations.conftest import PostgresServer

PNG_BYTES = 420_000  # a 512x512 RGB face crop as PNG
SCORES_BYTES = 600


class TimedRunner:
    """Emits its first progress event at once, then records `candidates` candidates as the pipeline would."""

    def __init__(self, candidates: int) -> None:
        self.candidates = candidates
        self.per_candidate_s: list[float] = []

    async def __call__(self, run: TaskRun) -> RunResult:
        run.on_event(inpaint_pb2.ProgressEvent(kind=inpaint_pb2.PROGRESS_KIND_STAGE_STARTED, planned=self.candidates))
        image, scores = os.urandom(PNG_BYTES), os.urandom(SCORES_BYTES)
        assert run.memo is not None
        for index in range(self.candidates):
            started = time.perf_counter()
            await run.memo.record(f"candidates/g{index}.image", image)
            await run.memo.record(f"scores/g{index}/model.json", scores)
            run.on_event(
                inpaint_pb2.ProgressEvent(
                    kind=inpaint_pb2.PROGRESS_KIND_CANDIDATE_SCORED, candidate_id=f"g{index}", scored=index + 1
                )
            )
            self.per_candidate_s.append(time.perf_counter() - started)
        return RunResult(response=inpaint_pb2.InpaintResponse(request_id=run.request.request_id), candidate_images={})


def request(request_id: str) -> inpaint_pb2.InpaintRequest:
    return inpaint_pb2.InpaintRequest(
        request_id=request_id,
        images=inpaint_pb2.TaskImages(
            init_image=image_pb2.Image(data=request_id.encode()),
            mask=image_pb2.Image(data=b"mask"),
            character_image=image_pb2.Image(data=b"character"),
        ),
    )


async def measure(database_url: str, root: Path, tasks: int, candidates: int) -> dict[str, Any]:
    config = OperationsConfig(database_url=database_url, blob_root=root / "blobs", poll_s=0.05, worker_concurrency=2)
    runner = TimedRunner(candidates)
    engine = OperationsEngine(
        config, runner, port=0, read_task_images=lambda _: (b"", b"", b""), check_request=lambda _: None,
        default_budget_s=600.0,
    )  # fmt: skip
    await engine.start()
    first_progress: list[float] = []
    try:
        for i in range(tasks):
            started = time.perf_counter()
            operation, _ = await engine.submit(request(f"bench-{i}-{time.time_ns()}"))
            async for event in engine.watch(operation.name):
                if event.HasField("progress"):
                    first_progress.append(time.perf_counter() - started)
                    break
            async for event in engine.watch(operation.name):
                if event.HasField("done"):
                    break
    finally:
        await engine.stop(grace_s=0.0)
    return {
        "tasks": tasks,
        "candidates_per_task": candidates,
        "submit_to_first_progress_ms": {
            "p50": round(statistics.median(first_progress) * 1000, 1),
            "max": round(max(first_progress) * 1000, 1),
        },
        "store_overhead_per_candidate_ms": {
            "p50": round(statistics.median(runner.per_candidate_s) * 1000, 2),
            "p95": round(sorted(runner.per_candidate_s)[int(0.95 * (len(runner.per_candidate_s) - 1))] * 1000, 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/operations.json"))
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-operations-"))
    try:
        results["sqlite"] = asyncio.run(
            measure(f"sqlite:///{work / 'ops.sqlite'}", work / "sqlite", args.tasks, args.candidates)
        )
        postgres = PostgresServer(Path(tempfile.mkdtemp(prefix="bench-postgres-"))).start()
        try:
            results["postgresql"] = asyncio.run(
                measure(postgres.new_database(), work / "postgres", args.tasks, args.candidates)
            )
        finally:
            postgres.stop()
            shutil.rmtree(postgres.root, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
