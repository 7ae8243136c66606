"""Merge every benchmark's JSON into bench/results/latest.json and a short bench/results/SUMMARY.md.

python -m bench.summary --results bench/results
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

PARTS = (
    "face_stage",
    "qwen_edit",
    "moondream",
    "gemini_scoring",
    "orchestrator",
    "prepare_memory",
    "face_features",
    "operations",
    "fleet",
    "gateway",
)
# The figures the summary shows (dotted paths into each part's JSON); latest.json keeps everything.
KEY_FIGURES = {
    "face_stage": (
        "single_swap_latency_ms.p50",
        "single_swap_latency_ms.p95",
        "concurrent.swaps_per_s",
        "triton_batching.face_stage_concurrent_swaps.all.inferences_per_execution",
        "triton_batching.face_stage_concurrent_swaps.det_10g.inferences_per_execution",
        "triton_batching.face_stage_concurrent_swaps.bisenet_resnet_34.inferences_per_execution",
        "triton_batching.face_stage_concurrent_swaps.w600k_r50.inferences_per_execution",
        "triton_batching.face_stage_concurrent_swaps.2d106det.inferences_per_execution",
        "triton_batching.single_crop_embeddings.w600k_r50.inferences_per_execution",
    ),
    "qwen_edit": (
        "speedup_batched_over_one_at_a_time.median",
        "batched_request_seconds.median",
        "one_seed_requests_seconds.median",
        "seconds_per_denoising_step.batch_of_seeds",
        "seconds_per_denoising_step.one_seed",
        "server_memory_mib.peak_rss",
    ),
    "moondream": ("cache_effect.later_question_ms_off_over_on", "cache_effect.judge_questions_per_s_on_over_off"),
    "gemini_scoring": (
        "modes.one_at_a_time.median_wall_s",
        "modes.concurrent_max8.median_wall_s",
        "modes.concurrent_max8.speedup_vs_one_at_a_time",
        "modes.concurrent_max21.median_wall_s",
    ),
    "orchestrator": (
        "median_s.total",
        "median_s.face",
        "median_s.generation",
        "median_s.scoring",
        "median_s.overhead",
        "median_s.overhead_share",
    ),
    "prepare_memory": ("peak_rss_mib", "largest_file_mib", "peak_over_largest_file", "bound"),
    "face_features": (
        "added_cost.several_photos_4_vs_1_ms",
        "added_cost.no_mask_largest_vs_given_ms",
        "added_cost.colour_match_ms",
        "added_cost.pixel_boost_256_vs_128_ms",
        "added_cost.pixel_boost_512_vs_128_ms",
        "added_cost.face_parser_and_occluder_vs_skin_colour_ms",
        "added_cost.edge_delta_e_colour_match_on",
        "added_cost.edge_delta_e_colour_match_off",
    ),
    "operations": (
        "sqlite.submit_to_first_progress_ms.p50",
        "sqlite.store_overhead_per_candidate_ms.p50",
        "postgresql.submit_to_first_progress_ms.p50",
        "postgresql.store_overhead_per_candidate_ms.p50",
    ),
    "fleet": (
        "goals.tasks_at_load",
        "goals.N=1.throughput_over_one_replica",
        "goals.N=2.throughput_over_one_replica",
        "goals.N=4.throughput_over_one_replica",
        "goals.N=2.shares_within_20pct",
        "goals.N=4.shares_within_20pct",
        "goals.lone_task.over_critical_path",
        "simulation.image_step_s",
    ),
    "gateway": (
        "gateway_added_ms_per_task",
        "gateway_added_share",
        "limit_share",
        "within_limit",
        "task_median_s.both",
    ),
}


def flatten(data: Any, prefix: str = "", depth: int = 3) -> dict[str, Any]:
    """Scalars of a nested document as dotted keys, down to `depth` levels (lists are left out)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict) and depth > 0:
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}.", depth - 1))
    elif isinstance(data, int | float | str | bool) and prefix:
        out[prefix[:-1]] = data
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    merged: dict[str, Any] = {
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    lines = [
        "# Benchmark summary",
        "",
        f"Written {merged['written_at']} by `make bench`; the numbers are in `latest.json`.",
        "",
    ]
    earlier_path = args.results / "latest.json"
    earlier: dict[str, Any] = json.loads(earlier_path.read_text()) if earlier_path.is_file() else {}
    # When each part's figures were measured: a part kept from an earlier run keeps its own date.
    earlier_dates: dict[str, str] = earlier.get("part_written_at", {})
    dates: dict[str, str] = {}
    for part in PARTS:
        path = args.results / f"{part}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            when = "this run"
            dates[part] = merged["written_at"]
        elif part in earlier:
            # Not run this time (each benchmark can run on its own): keep the last figures, said as such.
            data = earlier[part]
            dates[part] = earlier_dates.get(part, earlier.get("written_at", "date unknown"))
            when = f"an earlier run ({dates[part]})"
        else:
            lines += [f"## {part}", "", "not run", ""]
            continue
        merged[part] = data
        figures = flatten(data, depth=6)
        lines += [f"## {part}", ""]
        lines += [f"Figures from {when}.", ""] if when != "this run" else []
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {key} | {figures.get(key, 'missing')} |" for key in KEY_FIGURES[part]]
        lines.append("")
    merged["part_written_at"] = dates
    (args.results / "latest.json").write_text(json.dumps(merged, indent=2) + "\n")
    (args.results / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.results / 'latest.json'} and {args.results / 'SUMMARY.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
