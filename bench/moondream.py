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

import numpy as np
from inpaint.v1 import moondream_pb2, moondream_pb2_grpc

from orchestrator import sample_photos
from orchestrator.scoring.moondream_client import CONSISTENCY_QUESTION, encode_png, identity_queries
from stack.moondream import MoondreamProcessConfig, MoondreamServerProcess

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


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over rounds of every numeric field, and the rounds themselves."""
    keys = [k for k, v in rounds[0].items() if isinstance(v, int | float)]
    return {"median": {k: round(float(statistics.median(r[k] for r in rounds)), 3) for k in keys}, "rounds": rounds}


def noisy_faces(base: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """Distinct candidates (as refinements differ): the face crop with a little noise each."""
    rng = np.random.default_rng(seed)
    wide = base.astype(np.int16)
    return [np.clip(wide + rng.integers(-6, 7, wide.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("models/standins/moondream"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/moondream.json"))
    parser.add_argument("--calls", type=int, default=100, help="calls per throughput round")
    parser.add_argument("--candidates", type=int, default=8, help="candidates per judge-pattern round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per measurement (medians are reported)")
    parser.add_argument("--torch-threads", type=int, default=1, help="servers' torch threads (0: torch default)")
    args = parser.parse_args(argv)

    photo = sample_photos.astronaut()
    character = sample_photos.tom_hanks()
    face = photo[:256, 96:352]
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "settings": vars(args) | {"model_dir": str(args.model_dir), "out": str(args.out)},
    }
    # Both servers run at once and the rounds alternate between them, so that whatever else the machine
    # is doing weighs on both configurations alike.
    with tempfile.TemporaryDirectory() as logs:
        servers = {
            label: run_server(args.model_dir, Path(logs), size, args.torch_threads)
            for label, size in (("cache_on", 64), ("cache_off", 0))
        }
        try:
            stubs = {label: moondream_pb2_grpc.MoondreamServiceStub(s.channel()) for label, s in servers.items()}
            probe = stubs["cache_on"].Query(moondream_pb2.QueryRequest(image=encode_png(face), question="?"))
            results["model"] = {
                "name": probe.model.name,
                "adapter": probe.model.adapter,
                "standin": probe.model.standin,
            }
            ten: dict[str, list[dict[str, Any]]] = {label: [] for label in servers}
            judge: dict[str, list[dict[str, Any]]] = {label: [] for label in servers}
            for round_index in range(args.rounds):
                # A new image and new candidates each round: every round starts with a cold cache.
                fresh = np.ascontiguousarray(np.roll(photo, 7 * (round_index + 1), axis=1)[128:384, 128:384])
                faces = noisy_faces(face, args.candidates, seed=round_index)
                order = list(servers) if round_index % 2 == 0 else list(reversed(servers))
                for label in order:
                    stub, server = stubs[label], servers[label]
                    ten[label].append(same_image_questions(stub, server, encode_png(fresh), 10))
                    judge[label].append(judge_pattern(stub, server, faces, character))
            for label in servers:
                results[label] = {
                    "ten_questions_one_image": summarise(ten[label]),
                    "judge_pattern": summarise(judge[label]),
                }
            thru: dict[str, dict[str, list[dict[str, Any]]]] = {}
            stub = stubs["cache_on"]
            image = encode_png(face)
            for _ in range(args.rounds):
                for name, rounds in throughput(stub, image, args.calls).items():
                    for callers, figures in rounds.items():
                        thru.setdefault(name, {}).setdefault(callers, []).append(figures)
            results["throughput"] = {
                name: {callers: summarise(rounds) for callers, rounds in by_callers.items()}
                for name, by_callers in thru.items()
            }
        finally:
            for server in servers.values():
                server.stop()

    on, off = results["cache_on"], results["cache_off"]
    results["cache_effect"] = {
        "later_question_ms_off_over_on": round(
            off["ten_questions_one_image"]["median"]["later_questions_ms_median"]
            / on["ten_questions_one_image"]["median"]["later_questions_ms_median"],
            3,
        ),
        "judge_questions_per_s_on_over_off": round(
            on["judge_pattern"]["median"]["questions_per_s"] / off["judge_pattern"]["median"]["questions_per_s"], 3
        ),
        "judge_image_encodings_on_off": [
            on["judge_pattern"]["median"]["image_encodings"],
            off["judge_pattern"]["median"]["image_encodings"],
        ],
        "ten_questions_image_encodings_on_off": [
            on["ten_questions_one_image"]["median"]["image_encodings"],
            off["ten_questions_one_image"]["median"]["image_encodings"],
        ],
    }
    results["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("cache_on", "cache_off", "throughput")}, indent=2))
    for label in ("cache_on", "cache_off"):
        print(label, json.dumps({k: v["median"] for k, v in results[label].items()}))
    for name, by_callers in results["throughput"].items():
        for callers, summary in by_callers.items():
            print(name, f"{callers} caller(s)", json.dumps(summary["median"]))


if __name__ == "__main__":
    main()
