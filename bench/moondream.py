"""Benchmark the Moondream server on the tiny stand-in: queries per second for 1 and 8 concurrent callers,
and what the image-encoding cache saves.

    python -m bench.moondream --model-dir models/standins/moondream --out bench/results/moondream.json

Each measurement runs against a real server process (started here, on free ports). The stand-in is a
random-weight model two layers deep, so the figures measure the server's overhead and the cache's
effect at this scale, not moondream2's speed; the JSON says so (`model.standin`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from inpaint.v1 import moondream_pb2, moondream_pb2_grpc

from orchestrator import sample_photos
from orchestrator.scoring.moondream_client import CONSISTENCY_QUESTION, encode_png, identity_queries
from servers.moondream.launcher import CHANNEL_OPTIONS, MoondreamProcessConfig, MoondreamServerProcess

QUESTIONS = [f"Question {i}: how realistic is the skin texture of this face?" for i in range(64)]


def timed_calls(call: Callable[[int], object], total: int, callers: int) -> dict[str, float]:
    """Run `call(i)` for i < total from `callers` threads; queries/s and latency percentiles."""
    latencies: list[float] = []

    def one(i: int) -> None:
        started = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(one, range(total)))
    elapsed = time.perf_counter() - started
    return {
        "calls": total,
        "callers": callers,
        "seconds": round(elapsed, 4),
        "calls_per_s": round(total / elapsed, 2),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 2),
        "latency_p95_ms": round(1000 * float(np.percentile(latencies, 95)), 2),
    }


def throughput(stub: Any, image: Any, total: int) -> dict[str, Any]:
    """Score and Query calls, one question each, about one image (warm cache), for 1 and 8 callers."""

    def score(i: int) -> object:
        query = moondream_pb2.ScoreQuery(image=image, question=QUESTIONS[i % len(QUESTIONS)])
        return stub.Score(moondream_pb2.ScoreRequest(queries=[query]), timeout=120)

    def answer(i: int) -> object:
        request = moondream_pb2.QueryRequest(image=image, question=QUESTIONS[i % len(QUESTIONS)], max_new_tokens=16)
        return stub.Query(request, timeout=120)

    score(0)  # warm-up: first calls pay lazy initialisation
    answer(0)
    return {
        "score_1_question": {str(c): timed_calls(score, total, c) for c in (1, 8)},
        "query_16_tokens": {str(c): timed_calls(answer, total, c) for c in (1, 8)},
    }


def judge_pattern(
    stub: Any, server: MoondreamServerProcess, faces: list[np.ndarray], character: np.ndarray
) -> dict[str, Any]:
    """What the search asks per candidate: identity twice (two composites) and consistency, in one Score
    call, then a second look at the same candidate. Timed per call; encodings counted by the server."""
    before = server.metrics()
    first_calls: list[float] = []
    repeat_calls: list[float] = []
    for face in faces:
        queries = [*identity_queries(face, character), (face, CONSISTENCY_QUESTION)]
        request = moondream_pb2.ScoreRequest(
            queries=[moondream_pb2.ScoreQuery(image=encode_png(img), question=q) for img, q in queries]
        )
        for bucket in (first_calls, repeat_calls):
            started = time.perf_counter()
            stub.Score(request, timeout=120)
            bucket.append(time.perf_counter() - started)
    after = server.metrics()
    return {
        "candidates": len(faces),
        "questions": 2 * 3 * len(faces),
        "first_call_ms_median": round(1000 * statistics.median(first_calls), 2),
        "repeat_call_ms_median": round(1000 * statistics.median(repeat_calls), 2),
        "questions_per_s": round(2 * 3 * len(faces) / (sum(first_calls) + sum(repeat_calls)), 2),
        "image_encodings": after["moondream_image_encodings"] - before["moondream_image_encodings"],
        "cache_hits": after["moondream_image_cache_hits"] - before["moondream_image_cache_hits"],
    }


def same_image_questions(stub: Any, server: MoondreamServerProcess, image: Any, questions: int) -> dict[str, Any]:
    """`questions` Score calls about one new image, one after another."""
    before = server.metrics()
    latencies = []
    for i in range(questions):
        query = moondream_pb2.ScoreQuery(image=image, question=QUESTIONS[i % len(QUESTIONS)])
        started = time.perf_counter()
        stub.Score(moondream_pb2.ScoreRequest(queries=[query]), timeout=120)
        latencies.append(time.perf_counter() - started)
    after = server.metrics()
    return {
        "questions": questions,
        "first_question_ms": round(1000 * latencies[0], 2),
        "later_questions_ms_median": round(1000 * statistics.median(latencies[1:]), 2),
        "questions_per_s": round(questions / sum(latencies), 2),
        "image_encodings": after["moondream_image_encodings"] - before["moondream_image_encodings"],
    }


def run_server(model_dir: Path, log_dir: Path, cache_size: int, threads: int) -> MoondreamServerProcess:
    config = MoondreamProcessConfig(
        model_dir=model_dir,
        extra_args=[
            "--max-queue", "64",
            "--min-answer-mass", "0",
            "--image-cache-size", str(cache_size),
            "--torch-threads", str(threads),
            "--log-level", "WARNING",
        ],
        log_file=log_dir / f"moondream-cache{cache_size}.log",
    )  # fmt: skip
    return MoondreamServerProcess(config).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("models/standins/moondream"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/moondream.json"))
    parser.add_argument("--calls", type=int, default=200, help="calls per throughput measurement")
    parser.add_argument("--candidates", type=int, default=8, help="candidates in the judge pattern")
    parser.add_argument("--torch-threads", type=int, default=0, help="server's torch threads (0: torch default)")
    args = parser.parse_args(argv)

    photo = sample_photos.astronaut()
    rng = np.random.default_rng(0)
    character = sample_photos.tom_hanks()
    # Distinct candidates: the photo's face crop with a little noise each (as refinements differ).
    base = photo[:256, 96:352].astype(np.int16)
    faces = [np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8) for _ in range(args.candidates)]

    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {"calls": args.calls, "candidates": args.candidates, "torch_threads": args.torch_threads},
    }
    with tempfile.TemporaryDirectory() as logs:
        for cache_size in (64, 0):
            server = run_server(args.model_dir, Path(logs), cache_size, args.torch_threads)
            try:
                with grpc.insecure_channel(server.target, options=CHANNEL_OPTIONS) as channel:
                    stub = moondream_pb2_grpc.MoondreamServiceStub(channel)
                    probe = stub.Query(moondream_pb2.QueryRequest(image=encode_png(faces[0]), question="?"))
                    results["model"] = {
                        "name": probe.model.name,
                        "adapter": probe.model.adapter,
                        "standin": probe.model.standin,
                    }
                    label = "cache_on" if cache_size else "cache_off"
                    section: dict[str, Any] = {"image_cache_size": cache_size}
                    fresh = np.ascontiguousarray(photo[128:384, 128:384])
                    section["ten_questions_one_image"] = same_image_questions(stub, server, encode_png(fresh), 10)
                    section["judge_pattern"] = judge_pattern(stub, server, faces, character)
                    if cache_size:
                        section["throughput"] = throughput(stub, encode_png(faces[0]), args.calls)
                    results[label] = section
            finally:
                server.stop()

    on, off = results["cache_on"], results["cache_off"]
    results["cache_effect"] = {
        "later_question_speedup": round(
            off["ten_questions_one_image"]["later_questions_ms_median"]
            / on["ten_questions_one_image"]["later_questions_ms_median"],
            3,
        ),
        "judge_questions_per_s_on_vs_off": round(
            on["judge_pattern"]["questions_per_s"] / off["judge_pattern"]["questions_per_s"], 3
        ),
        "encodings_on_vs_off": [on["judge_pattern"]["image_encodings"], off["judge_pattern"]["image_encodings"]],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
