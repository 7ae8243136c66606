"""Benchmark the face stage on a real tritonserver: latency of one full swap, and Triton's batching.

    python -m bench.face_stage --out bench/results/face_stage.json [--runs 40] [--callers 16]

Runs on whatever triton_models/ holds (stand-ins unless `make models` ran) and records which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from orchestrator import sample_photos
from orchestrator.faces.analysis import FaceAnalyzer
from orchestrator.faces.stage import FaceStage
from orchestrator.faces.triton_client import TritonConfig, TritonModels
from servers.triton.contracts import ALL_MODELS, ARCFACE_W600K
from servers.triton.provenance import read_provenance
from stack.triton import TritonServer, TritonServerConfig

REPOSITORY = Path(__file__).resolve().parents[1] / "triton_models"
BATCHED_MODELS = tuple(m.triton_name for m in ALL_MODELS if m.batchable)


def settled_statistics(models: TritonModels, model: str) -> tuple[int, int]:
    """Triton's counters once they stop moving (it records a request just after answering it)."""
    last = models.inference_statistics(model)
    for _ in range(100):
        time.sleep(0.05)
        current = models.inference_statistics(model)
        if current == last:
            break
        last = current
    return last


def compute_s(models: TritonModels, model: str) -> float:
    """Seconds Triton has spent executing the model (its inputs, the run, its outputs) since it loaded: summed
    over executions (batch_stats), not over requests (inference_stats counts a batch once per request in it)."""
    batches = models.client.get_inference_statistics(model).model_stats[0].batch_stats
    return float(sum(b.compute_input.ns + b.compute_infer.ns + b.compute_output.ns for b in batches)) / 1e9


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def measure(url: str, runs: int, callers: int) -> dict[str, object]:
    init, mask, character = sample_photos.astronaut(), sample_photos.astronaut_face_mask(), sample_photos.tom_hanks()
    models = TritonModels(TritonConfig(url=url))
    stage = FaceStage(FaceAnalyzer(models))
    stage.run(init, mask, character)  # warm-up: first requests pay session start-up
    latencies = []
    stage_timings: dict[str, list[float]] = {}
    for _ in range(runs):
        started = time.perf_counter()
        result = stage.run(init, mask, character)
        latencies.append(time.perf_counter() - started)
        for key, value in result.timings_s.items():
            stage_timings.setdefault(key, []).append(value)

    def batching_of(work: Callable[[], object]) -> dict[str, dict[str, float]]:
        """Per batched model, and over all of them ("all"), the inferences per Triton execution."""
        before = {m: settled_statistics(models, m) for m in BATCHED_MODELS}
        busy_before = {m: compute_s(models, m) for m in BATCHED_MODELS}
        started = time.perf_counter()
        work()
        wall = time.perf_counter() - started
        counts = {
            m: tuple(a - b for a, b in zip(settled_statistics(models, m), before[m], strict=True))
            for m in BATCHED_MODELS
        }
        # A model busy a small share of the time finds each request alone when it arrives: only a wait
        # would batch it (the queue delay), at the cost of that wait. (Read once the counters have settled;
        # with several instances, as a GPU configuration may run, the share can exceed 1.)
        busy = {m: round((compute_s(models, m) - busy_before[m]) / wall, 3) for m in BATCHED_MODELS}
        counts["all"] = tuple(sum(c[i] for c in counts.values()) for i in (0, 1))
        return {
            model: {
                "inferences": inferences,
                "executions": executions,
                "inferences_per_execution": round(inferences / max(executions, 1), 2),
                **({"busy_share": busy[model]} if model in busy else {}),
            }
            for model, (inferences, executions) in counts.items()
        }

    started = time.perf_counter()

    def swaps() -> None:
        with ThreadPoolExecutor(max_workers=callers) as pool:
            list(pool.map(lambda _: stage.run(init, mask, character), range(callers * 4)))

    batching = {"face_stage_concurrent_swaps": batching_of(swaps)}
    concurrent_wall = time.perf_counter() - started
    # Many callers embedding one crop each at once: the pattern of scoring a stage's candidates.
    arcface, arcface_in, arcface_out = (
        ARCFACE_W600K.triton_name,
        ARCFACE_W600K.inputs[0].name,
        ARCFACE_W600K.outputs[0].name,
    )
    crops = np.random.default_rng(0).random((callers * 8, 1, 3, 112, 112), dtype=np.float32)

    def embeddings() -> None:
        with ThreadPoolExecutor(max_workers=callers) as pool:
            list(pool.map(lambda x: models.infer(arcface, {arcface_in: x}, [arcface_out]), crops))

    batching["single_crop_embeddings"] = {arcface: batching_of(embeddings)[arcface]}
    models.close()
    return {
        "single_swap_latency_ms": {
            "runs": runs,
            "p50": round(percentile(latencies, 50) * 1000, 1),
            "p95": round(percentile(latencies, 95) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1),
        },
        "stage_p50_ms": {k: round(percentile(v, 50) * 1000, 2) for k, v in stage_timings.items()},
        "concurrent": {
            "callers": callers,
            "swaps": callers * 4,
            "wall_s": round(concurrent_wall, 3),
            "swaps_per_s": round(callers * 4 / concurrent_wall, 2),
        },
        "triton_batching": batching,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/face_stage.json"))
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--callers", type=int, default=16)
    args = parser.parse_args(argv)
    provenance = read_provenance(REPOSITORY) or []
    config = TritonServerConfig.on_free_ports(
        repository=REPOSITORY, log_file=args.out.parent / "face_stage_tritonserver.log"
    )
    with TritonServer(config):
        results = measure(config.grpc_url, args.runs, args.callers)
    results["models"] = {m.name: ("stand-in" if m.standin else "real") for m in provenance}
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "triton_config": "cpu (python backend + onnxruntime)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
