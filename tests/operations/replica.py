"""One orchestrator replica's operations engine with the fake runner, as its own process (for kill -9 tests).

    python -m tests.operations.replica --database-url URL --blob-root DIR --log FILE --gates DIR [--submit ID]

Runs until SIGTERM (then drains as the service does) or until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from inpaint.v1 import image_pb2, inpaint_pb2

from orchestrator.operations.config import OperationsConfig
from orchestrator.operations.engine import OperationsEngine
from tests.operations.fake_runner import FakeRunner


def task(request_id: str) -> inpaint_pb2.InpaintRequest:
    return inpaint_pb2.InpaintRequest(
        request_id=request_id,
        images=inpaint_pb2.TaskImages(
            init_image=image_pb2.Image(data=b"init"),
            mask=image_pb2.Image(data=b"mask"),
            character_image=image_pb2.Image(data=b"character"),
        ),
    )


async def serve(args: argparse.Namespace) -> None:
    config = OperationsConfig(
        database_url=args.database_url, blob_root=args.blob_root, poll_s=0.05, heartbeat_s=0.2, dead_after_s=1.0
    )
    runner = FakeRunner(args.log, candidates=3, per_candidate_gates=args.gates)
    engine = OperationsEngine(
        config, runner, port=0, read_task_images=lambda _: (b"", b"", b""),
        check_request=lambda _: None, default_budget_s=60.0,
    )  # fmt: skip
    await engine.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if args.submit:
        await engine.submit(task(args.submit))
    print(f"ready {engine.executor_id}", flush=True)
    await stop.wait()
    await engine.stop(grace_s=args.grace_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--blob-root", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--gates", type=Path, required=True)
    parser.add_argument("--submit", default="")
    parser.add_argument("--grace-s", type=float, default=0.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
