"""Benchmark: scoring a search's candidates with Gemini, concurrently against one at a time.

The real `google-genai` SDK talks to the local fake Gemini server, which answers after a fixed delay
(300 ms by default, about a real flash model's latency for one image). Each mode scores the same
candidates `--repeats` times; the JSON keeps every run and the median. The figures justify
`GeminiConfig.max_concurrency`, the one concurrency setting of Gemini scoring.

It also measures what one request carries for a 30 MP photo: the full-resolution JPEG the search used
to send against the two judge views (`build_judge_views`), with the time to build each.

    .venv/bin/python -m bench.gemini_scoring [--candidates 21] [--delay-ms 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from orchestrator.refine.crop import CropBox
from orchestrator.scoring.gemini import GeminiConfig, GeminiRealismScorer, RealismScore, build_judge_views
from tests.fakes.fake_gemini import FakeGemini

RESULTS = Path(__file__).resolve().parent / "results" / "gemini_scoring.json"
BENCH_KEY = "bench-key-not-secret"


@dataclass(frozen=True)
class Mode:
    name: str
    concurrent: bool
    max_concurrency: int


async def score_all(scorer: GeminiRealismScorer, images: list[bytes], concurrent: bool) -> list[RealismScore]:
    if concurrent:
        return list(await asyncio.gather(*(scorer.score(image, request_id="bench") for image in images)))
    return [await scorer.score(image, request_id="bench") for image in images]


def run_mode(fake: FakeGemini, mode: Mode, candidates: int) -> dict[str, Any]:
    images = [f"candidate-{i}".encode() for i in range(candidates)]
    cfg = GeminiConfig(models=("bench-model",), base_url=fake.base_url, max_concurrency=mode.max_concurrency)

    async def run() -> tuple[float, list[RealismScore]]:
        scorer = GeminiRealismScorer(cfg, api_key=BENCH_KEY)
        try:
            started = time.perf_counter()
            results = await score_all(scorer, images, mode.concurrent)
            return time.perf_counter() - started, results
        finally:
            await scorer.aclose()

    fake.state.max_in_flight = 0
    wall_s, results = asyncio.run(run())
    fallbacks = sum(r.fallback for r in results)
    if fallbacks:
        raise RuntimeError(f"{mode.name}: {fallbacks} of {candidates} scores fell back: {results[0].reason}")
    per_call = sorted(r.elapsed_s for r in results)
    return {
        "wall_s": round(wall_s, 4),
        "per_candidate_mean_s": round(statistics.fmean(per_call), 4),
        "per_candidate_max_s": round(per_call[-1], 4),
        "max_in_flight": fake.max_in_flight,
    }


def payload_30mp() -> dict[str, Any]:
    """Bytes and build time of one request's images for a 6720 x 4480 photo with sensor-like noise."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(4480, 6720, 3), dtype=np.uint8)
    box = CropBox(3000, 1500, 3700, 2200)
    started = time.perf_counter()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    full_s = time.perf_counter() - started
    started = time.perf_counter()
    views = build_judge_views(image, box)
    views_s = time.perf_counter() - started
    return {
        "full_jpeg_bytes": len(buffer.getvalue()),
        "full_jpeg_base64_bytes": -(-len(buffer.getvalue()) // 3) * 4,
        "full_jpeg_build_s": round(full_s, 3),
        "views_bytes": views.nbytes,
        "views": f"face {views.face.size}, whole {views.whole.size}",
        "views_build_s": round(views_s, 3),
        "inline_limit_bytes": 20 * 1024 * 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=21)
    parser.add_argument("--delay-ms", type=float, default=300.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    modes = [
        Mode("one_at_a_time", concurrent=False, max_concurrency=1),
        Mode("concurrent_max4", concurrent=True, max_concurrency=4),
        Mode("concurrent_max8", concurrent=True, max_concurrency=8),
        Mode(f"concurrent_max{args.candidates}", concurrent=True, max_concurrency=args.candidates),
    ]
    report: dict[str, Any] = {
        "benchmark": "gemini_scoring",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "candidates": args.candidates,
        "answer_delay_ms": args.delay_ms,
        "repeats": args.repeats,
        "server": "tests/fakes/fake_gemini.py on 127.0.0.1 (real google-genai SDK client)",
        "google_genai": version("google-genai"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "default_max_concurrency": GeminiConfig().max_concurrency,
        "modes": {},
        "payload_30mp": payload_30mp(),
    }
    with FakeGemini() as fake:
        fake.configure(delay_s=args.delay_ms / 1000.0)
        for mode in modes:
            runs = [run_mode(fake, mode, args.candidates) for _ in range(args.repeats)]
            median_wall = statistics.median(r["wall_s"] for r in runs)
            report["modes"][mode.name] = {
                "concurrent": mode.concurrent,
                "max_concurrency": mode.max_concurrency,
                "median_wall_s": round(median_wall, 4),
                "throughput_per_s": round(args.candidates / median_wall, 2),
                "runs": runs,
            }
    baseline = report["modes"]["one_at_a_time"]["median_wall_s"]
    for entry in report["modes"].values():
        entry["speedup_vs_one_at_a_time"] = round(baseline / entry["median_wall_s"], 2)
    # The floor for each mode: ceil(candidates / slots) answer times; the rest is client and server overhead.
    for entry in report["modes"].values():
        slots = 1 if not entry["concurrent"] else entry["max_concurrency"]
        floor_s = -(-args.candidates // slots) * args.delay_ms / 1000.0
        entry["ideal_wall_s"] = round(floor_s, 4)
        entry["overhead_s"] = round(entry["median_wall_s"] - floor_s, 4)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, entry in report["modes"].items():
        print(
            f"{name:>20}: {entry['median_wall_s']:.3f} s (ideal {entry['ideal_wall_s']:.3f} s), "
            f"x{entry['speedup_vs_one_at_a_time']} vs one at a time, max in flight {entry['runs'][-1]['max_in_flight']}"
        )
    payload = report["payload_30mp"]
    print(
        f"30 MP photo: full JPEG {payload['full_jpeg_base64_bytes'] / 1e6:.1f} MB base64 "
        f"({payload['full_jpeg_build_s']:.2f} s), "
        f"views {payload['views_bytes'] / 1e3:.0f} kB ({payload['views_build_s']:.2f} s)"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
