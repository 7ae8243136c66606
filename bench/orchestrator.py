"""Benchmark whole tasks through the public API: where the wall time goes.

    python -m bench.orchestrator --out bench/results/orchestrator.json [--tasks 3]

Brings a stack up on free ports (stand-ins unless `make models` ran), runs the bundled photo pair
--tasks times with the default search, and reports per task: face stage, generation (waiting on
Qwen-Edit, which includes putting each edited crop back and blending it), scoring (waiting on the
scorers), the orchestrator's own overhead during the search, and the overhead's share of the total.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from orchestrator import sample_photos
from orchestrator.client import InpaintClient, task_request, timings_s
from stack.local import Ports, Stack, StackConfig

KEYS = ("face", "generation", "scoring", "waiting", "overhead", "search", "total")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/orchestrator.json"))
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args(argv)
    images = [
        sample_photos.encode_png(a)
        for a in (sample_photos.astronaut(), sample_photos.astronaut_face_mask(), sample_photos.tom_hanks())
    ]
    runs = []
    with Stack(Path(tempfile.mkdtemp(prefix="bench-orchestrator-")), StackConfig(ports=Ports.free())) as stack:
        client = InpaintClient(f"127.0.0.1:{stack.config.ports.orchestrator}")
        for i in range(args.tasks + 1):  # the first task warms every server up and is not counted
            started = time.perf_counter()
            response = client.inpaint(task_request(*images, request_id=f"bench-{i}-{time.time_ns()}"), 3600)
            wall = time.perf_counter() - started
            if i == 0:
                continue
            timings = timings_s(response)
            runs.append(
                {**{k: timings.get(k, 0.0) for k in KEYS}, "client_wall": wall, "candidates": len(response.candidates)}
            )
            stand_ins = list(response.stand_in_models)
        client.close()
    median = {k: round(statistics.median(r[k] for r in runs), 3) for k in (*KEYS, "client_wall")}
    median["overhead_share"] = round(median["overhead"] / median["total"], 4) if median["total"] else 0.0
    result = {"tasks": args.tasks, "median_s": median, "runs": runs, "stand_in_models": stand_ins}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_s"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
