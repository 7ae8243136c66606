"""A simulated GPU fleet on one machine: throughput, latency and load spreading over N Qwen-Edit replicas.

    python -m bench.fleet [--replicas 1 2 4] [--tasks 1 4 16] [--time-scale 1.0] --out bench/results/fleet.json
    make bench-fleet

The model servers are the real ones on their stand-ins, in simulation mode: a Qwen-Edit denoising step and a
Moondream answer also take the time the real model takes on an H200 (a sleep, not CPU), so that many
replicas fit on two cores. Triton (CPU stand-ins), a fake Gemini with a fixed answer time and the real
orchestrator complete the fleet. The orchestrator reaches the N replicas of each model server through one
multi-address target with round_robin, as it reaches a headless Service's pods.

Simulated times (all multiplied by --time-scale, 1.0 by default: an H200's own times). A smaller scale
shortens the run but is not neutral: the host's CPU work per task (the orchestrator, Triton's CPU models,
the stand-ins' VAE) does not shrink with it, so on two cores it weighs twice as much in every ratio at 0.5
as at 1.0.
- Qwen-Image-Edit on an H200 at 1024x1024: 17.8 s for 50 steps (true CFG included), 0.356 s a step. At the
  crop the service edits (--crop, 512 by default) a step costs that times the crop's share of the tokens,
  (crop/1024)^2 (image and condition tokens both scale with the pixels; attention's quadratic term is
  ignored, which overestimates small crops). The stand-in computes at --edit-px (tiny, so the CPU stays
  out of the way) and its server is told the per-step time that gives this figure at that size.
- Moondream (a 2B VLM) on an H200: --moondream-answer-s a scored question (assumed, 0.08 s).
- Gemini: --gemini-s an answer (assumed, 2.0 s: a hosted API call with two images).

Each cell runs C tasks at once through the public API and reports tasks per hour, p50/p95 task latency,
each replica's share of the edit requests, and a lone task's latency over its critical path (face stage +
one global generation + one scoring round + one local generation + one scoring round). The same fleet also
serves a second orchestrator running the seed's own schedule (`search.sequential`: one candidate at a time,
each scored before the next, scorers one after the other), as the baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import sample_photos
from orchestrator.client import InpaintClient, task_request, timings_s
from stack.local import REPO_ROOT, StackConfig, moondream_model_dir, qwen_model_dir
from stack.process import SERVING, ModelServerProcess, ServerProcessConfig, free_port
from stack.triton import TritonServer, TritonServerConfig

H200_QWEN_STEP_S_AT_1024 = 17.8 / 50
STEPS = 12
K_GLOBAL, M_GLOBAL, K_LOCAL = 8, 3, 4
MOONDREAM_QUESTIONS_PER_CANDIDATE = 3  # two identity composites and consistency, in one Score call
# The fleet is fixed during a run, so its servers do not recycle connections (in production they do every
# 60 s, so that replicas an HPA adds get traffic: tests/common/test_load_spreading.py). Each recycle makes
# round_robin start its rotation at a random replica again, which over a cell's 64 edit requests moves a
# replica's share by a request or two: noise in the figure this benchmark reports, not spreading.
FIXED_FLEET_CONNECTION_AGE_S = 3600
# Gemini calls in flight per orchestrator: production sets it from its quota (8 by default); the fake Gemini
# has none, and 16 tasks scoring a stage at once would otherwise queue behind 8 slots.
GEMINI_CONCURRENCY = 64


@dataclass(frozen=True)
class Simulation:
    crop: int
    edit_px: int
    time_scale: float
    moondream_answer_s: float
    gemini_s: float

    @property
    def image_step_s(self) -> float:
        """What one image's denoising step costs at the crop size, scaled."""
        return H200_QWEN_STEP_S_AT_1024 * (self.crop / 1024) ** 2 * self.time_scale

    @property
    def server_step_s(self) -> float:
        """The Qwen-Edit server's `simulate_step_s` (per image at 1024^2) that gives image_step_s at edit_px."""
        return self.image_step_s * (1024 / self.edit_px) ** 2

    @property
    def scoring_round_s(self) -> float:
        """Scorers run concurrently: the slower of Gemini and Moondream's questions."""
        return max(self.gemini_s, MOONDREAM_QUESTIONS_PER_CANDIDATE * self.moondream_answer_s) * self.time_scale

    def critical_path_s(self, face_s: float) -> float:
        global_generation = (K_GLOBAL - 1) * STEPS * self.image_step_s  # one request, its seeds one after another
        local_generation = K_LOCAL * STEPS * self.image_step_s  # the parents' requests run side by side
        return face_s + global_generation + self.scoring_round_s + local_generation + self.scoring_round_s


def python_of(venv: str) -> Path:
    return REPO_ROOT / venv / "bin" / "python"


@contextmanager
def model_fleet(replicas: int, sim: Simulation, logs: Path) -> Iterator[tuple[list[ModelServerProcess], str, str]]:
    """N Qwen-Edit and N Moondream replicas; yields (qwen processes, qwen target, moondream target)."""
    qwen_dir, _ = qwen_model_dir(StackConfig())
    moondream_dir, adapter, _ = moondream_model_dir(StackConfig())
    with ExitStack() as stack:
        qwen = [
            ModelServerProcess(
                ServerProcessConfig(
                    "servers.qwen_edit", python_of(".venv-qwen"),
                    args=["--model-dir", str(qwen_dir), "--max-queue=256", "--torch-threads=1",
                          f"--simulate-step-s={sim.server_step_s:.6f}",
                          f"--max-connection-age-s={FIXED_FLEET_CONNECTION_AGE_S}"],
                    log_file=logs / f"qwen-{i}.log", ready_timeout_s=600,
                )
            )
            for i in range(replicas)
        ]  # fmt: skip
        moondream = [
            ModelServerProcess(
                ServerProcessConfig(
                    "servers.moondream", python_of(".venv-moondream"),
                    args=["--adapter", adapter, "--model-dir", str(moondream_dir), "--max-queue=256",
                          "--torch-threads=1", f"--simulate-answer-s={sim.moondream_answer_s * sim.time_scale:.6f}",
                          f"--max-connection-age-s={FIXED_FLEET_CONNECTION_AGE_S}"],
                    log_file=logs / f"moondream-{i}.log", ready_timeout_s=600,
                )
            )
            for i in range(replicas)
        ]  # fmt: skip
        for process in [*qwen, *moondream]:
            stack.enter_context(process.start(wait=False))
        for process in [*qwen, *moondream]:
            process.wait_for_status(SERVING)
        targets = (
            "ipv4:" + ",".join(p.config.target for p in qwen),
            "ipv4:" + ",".join(p.config.target for p in moondream),
        )
        yield qwen, *targets


@contextmanager
def orchestrator(
    port: int,
    triton_url: str,
    repository: Path,
    qwen: str,
    moondream: str,
    gemini_url: str,
    sequential: bool,
    edit_px: int,
    log: Path,
) -> Iterator[str]:
    """The real orchestrator on `port`, once SERVING (its health follows Triton's face models); yields its address."""
    config = ServerProcessConfig(
        "orchestrator.service", python_of(".venv"),
        args=[
            f"--triton.url={triton_url}", f"--triton.repository={repository}",
            f"--qwen-edit.target={qwen}", f"--moondream.target={moondream}", f"--gemini.base-url={gemini_url}",
            "--gemini.models=gemini-3-flash-fake", f"--gemini.max-concurrency={GEMINI_CONCURRENCY}",
            "--probe-wait-s=0", "--worker-threads=64",
            f"--refinement.min-edit-size={edit_px}", f"--refinement.max-edit-size={edit_px}",
            "--operations.worker-concurrency=16", f"--operations.state-dir={log.with_suffix('')}",
            f"--search.sequential={'true' if sequential else 'false'}",
        ],
        port=port, log_file=log, ready_timeout_s=600, env={"GEMINI_API_KEY": "fleet-benchmark"},
    )  # fmt: skip
    with ModelServerProcess(config) as process:
        yield process.target


def edit_requests(replicas: list[ModelServerProcess]) -> list[float]:
    counts = []
    for process in replicas:
        samples = process.metrics()
        counts.append(sum(v for k, v in samples.items() if k.startswith("qwen_edit_requests_total") and "Edit" in k))
    return counts


def run_cell(address: str, tasks: int, images: list[bytes], label: str) -> dict[str, Any]:
    def one(i: int) -> tuple[float, dict[str, float], bool]:
        with InpaintClient(address) as client:
            started = time.perf_counter()
            response = client.inpaint(task_request(*images, request_id=f"fleet-{label}-{i}-{time.time_ns()}"), 3600)
            return time.perf_counter() - started, timings_s(response), response.degraded

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=tasks) as pool:
        results = list(pool.map(one, range(tasks)))
    wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    return {
        "tasks": tasks,
        "wall_s": round(wall, 3),
        "tasks_per_hour": round(tasks / wall * 3600, 1),
        "latency_s": {
            "p50": round(statistics.median(latencies), 3),
            "p95": round(latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))], 3),
        },
        "face_s_median": round(statistics.median(r[1].get("face", 0.0) for r in results), 3),
        "degraded": sum(1 for r in results if r[2]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--edit-px", type=int, default=32)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--moondream-answer-s", type=float, default=0.08)
    parser.add_argument("--gemini-s", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/fleet.json"))
    args = parser.parse_args(argv)
    sim = Simulation(args.crop, args.edit_px, args.time_scale, args.moondream_answer_s, args.gemini_s)
    images = [
        sample_photos.encode_png(a)
        for a in (sample_photos.astronaut(), sample_photos.astronaut_face_mask(), sample_photos.tom_hanks())
    ]
    logs = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    repository = REPO_ROOT / "triton_models"
    print(f"logs in {logs}; simulated image step {sim.image_step_s * 1000:.1f} ms", file=sys.stderr, flush=True)
    cells: list[dict[str, Any]] = []
    from tests.fakes.fake_gemini import FakeGemini

    with (
        TritonServer(TritonServerConfig.on_free_ports(repository=repository, log_file=logs / "triton.log")) as triton,
        FakeGemini() as gemini,
    ):
        gemini.configure(delay_s=sim.gemini_s * sim.time_scale)
        for replicas in args.replicas:
            with model_fleet(replicas, sim, logs) as (qwen, qwen_target, moondream_target):
                for schedule in ("overlapped", "sequential"):
                    with orchestrator(
                        free_port(), triton.config.grpc_url, repository, qwen_target, moondream_target,
                        gemini.base_url, schedule == "sequential", sim.edit_px,
                        logs / f"orchestrator-{replicas}-{schedule}.log",
                    ) as address:  # fmt: skip
                        run_cell(address, 1, images, "warm-up")
                        for tasks in args.tasks:
                            before = edit_requests(qwen)
                            cell = run_cell(address, tasks, images, f"{replicas}-{schedule}-{tasks}")
                            after = edit_requests(qwen)
                            done = [a - b for a, b in zip(after, before)]
                            cell |= {
                                "replicas": replicas,
                                "schedule": schedule,
                                "edit_requests_per_replica": done,
                                "replica_share": [round(d / max(sum(done), 1), 3) for d in done],
                                "critical_path_s": round(sim.critical_path_s(cell["face_s_median"]), 3),
                            }
                            cell["lone_latency_over_critical_path"] = (
                                round(cell["latency_s"]["p50"] / cell["critical_path_s"], 3) if tasks == 1 else None
                            )
                            cells.append(cell)
                            print(json.dumps(cell), flush=True)
    result = {
        "simulation": {
            "crop": sim.crop,
            "edit_px": sim.edit_px,
            "time_scale": sim.time_scale,
            "image_step_s": round(sim.image_step_s, 5),
            "qwen_server_simulate_step_s": round(sim.server_step_s, 5),
            "moondream_answer_s": sim.moondream_answer_s * sim.time_scale,
            "gemini_s": sim.gemini_s * sim.time_scale,
            "source": "H200 Qwen-Image-Edit 1024x1024: 17.8 s / 50 steps; Moondream and Gemini times assumed",
        },
        "cells": cells,
        "goals": goals(cells, args.replicas),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["goals"], indent=2))
    return 0


def goals(cells: list[dict[str, Any]], replica_counts: list[int]) -> dict[str, Any]:
    """The issue's goals, checked on the overlapped schedule at the most concurrent load."""
    overlapped = [c for c in cells if c["schedule"] == "overlapped"]
    if not overlapped:
        return {}
    busiest = max(c["tasks"] for c in overlapped)
    at_load = {c["replicas"]: c for c in overlapped if c["tasks"] == busiest}
    one = at_load.get(min(replica_counts))
    out: dict[str, Any] = {"tasks_at_load": busiest}
    for n, cell in sorted(at_load.items()):
        scaling = cell["tasks_per_hour"] / one["tasks_per_hour"] if one else None
        shares = cell["replica_share"]
        out[f"N={n}"] = {
            "throughput_over_one_replica": round(scaling, 2) if scaling else None,
            "goal_throughput_at_least": round(0.8 * n, 2),
            "shares_within_20pct": (max(shares) - min(shares)) <= 0.2 * (1 / n) if shares else None,
        }
    # A stage's parallel requests: the global stage's one, the local stage's one per parent (M_GLOBAL).
    lone = [c for c in overlapped if c["tasks"] == 1 and c["replicas"] >= M_GLOBAL]
    if lone:
        out["lone_task"] = {
            "replicas": [c["replicas"] for c in lone],
            "over_critical_path": max(c["lone_latency_over_critical_path"] for c in lone),
            "goal_at_most": 1.2,
        }
    return out


if __name__ == "__main__":
    raise SystemExit(main())
