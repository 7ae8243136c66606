"""Benchmark the added cost of each face feature on a real tritonserver: several photos, no mask (and the
target choices), colour match, pixel boost, the face parser and occluder (against the skin-colour model).

    python -m bench.face_features --out bench/results/face_features.json [--runs 10]

Each variant runs the whole face stage `runs` times on the bundled photos (the astronaut, Tom Hanks);
the figures are p50 milliseconds of the stage and of its own timed steps, and for colour match the
colour difference at the mask's edge (mean CIE76 delta E) with and without it. Runs on whatever
triton_models/ holds (stand-ins unless `make models` ran) and records which: with stand-ins the
swapped face is noise, so the delta E figures show the mechanism, not a real face's seam.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator import sample_photos
from orchestrator.faces.analysis import FaceAnalyzer
from orchestrator.faces.options import FaceDefaults, FaceOptions, TargetChoice
from orchestrator.faces.stage import FaceStage, FaceStageConfig, FaceStageResult
from orchestrator.faces.triton_client import TritonConfig, TritonModels
from servers.triton.provenance import read_provenance
from stack.triton import TritonServer, TritonServerConfig

REPOSITORY = Path(__file__).resolve().parents[1] / "triton_models"


def _p50_ms(values: list[float]) -> float:
    return round(float(np.percentile(np.array(values), 50)) * 1000, 2)


def variant(stage: FaceStage, runs: int, **run: Any) -> dict[str, Any]:
    """p50 of the whole stage and of each of its steps; the last run's `applied` record."""
    stage.run(**run)  # warm-up
    totals: list[float] = []
    steps: dict[str, list[float]] = {}
    result: FaceStageResult | None = None
    for _ in range(runs):
        started = time.perf_counter()
        result = stage.run(**run)
        totals.append(time.perf_counter() - started)
        for key, value in result.timings_s.items():
            steps.setdefault(key, []).append(value)
    assert result is not None
    return {
        "stage_p50_ms": _p50_ms(totals),
        "steps_p50_ms": {k: _p50_ms(v) for k, v in steps.items()},
        "applied": result.applied,
    }


def measure(url: str, runs: int) -> dict[str, Any]:
    init, mask, tom = sample_photos.astronaut(), sample_photos.astronaut_face_mask(), sample_photos.tom_hanks()
    photos = [tom, tom[:, ::-1].copy(), (tom * 0.9).astype(np.uint8), (tom * 0.8).astype(np.uint8)]
    models = TritonModels(TritonConfig(url=url))
    stage = FaceStage(FaceAnalyzer(models))
    base = {"init": init, "mask": mask, "character": tom}
    loose = FaceOptions(min_identity_cosine=0.0)
    out: dict[str, Any] = {"baseline": variant(stage, runs, **base)}
    out["several_photos"] = {
        f"{n}_photos": variant(stage, runs, **{**base, "character": (photos * 2)[:n], "options": loose})
        for n in (1, 4, 8)
    }
    out["no_mask"] = {
        "largest": variant(stage, runs, **{**base, "mask": None}),
        "index_0": variant(stage, runs, **{**base, "mask": None, "options": FaceOptions(TargetChoice.INDEX, 0)}),
        "reference": variant(
            stage,
            runs,
            **{**base, "mask": None, "options": FaceOptions(TargetChoice.REFERENCE), "reference": init},
        ),
    }
    out["colour_match"] = {
        "on": variant(stage, runs, **{**base, "options": FaceOptions(colour_match=True)}),
        "off": variant(stage, runs, **{**base, "options": FaceOptions(colour_match=False)}),
    }
    out["pixel_boost"] = {
        f"swap_{size}": variant(stage, runs, **{**base, "options": FaceOptions(swap_size=size)})
        for size in (128, 256, 512)
    }
    no_parser = FaceStage(
        FaceAnalyzer(models), FaceStageConfig(faces=FaceDefaults(parser_model="absent", occluder_model="absent"))
    )
    out["hair_and_occluders"] = {
        "face_parser_and_occluder": variant(stage, runs, **base),
        "skin_colour_model": variant(no_parser, runs, **base),
    }
    models.close()
    return out


def _steps(result: dict[str, Any], *names: str) -> float:
    return float(sum(result["steps_p50_ms"].get(n, 0.0) for n in names))


def summary(results: dict[str, Any]) -> dict[str, float]:
    """The added cost of each feature: p50 ms of the stage steps it touches, over its plain counterpart.

    The steps rather than the whole stage, because on a shared CPU the whole stage's spread is larger
    than most of these differences.
    """
    photos, no_mask, colour, boost = (results[k] for k in ("several_photos", "no_mask", "colour_match", "pixel_boost"))
    target = ("detect_target", "refine_mask")
    added = {
        "several_photos_4_vs_1_ms": _steps(photos["4_photos"], "character_identity")
        - _steps(photos["1_photos"], "character_identity"),
        "several_photos_8_vs_1_ms": _steps(photos["8_photos"], "character_identity")
        - _steps(photos["1_photos"], "character_identity"),
        "no_mask_largest_vs_given_ms": _steps(no_mask["largest"], *target) - _steps(results["baseline"], *target),
        "no_mask_index_vs_given_ms": _steps(no_mask["index_0"], *target) - _steps(results["baseline"], *target),
        "no_mask_reference_vs_given_ms": _steps(no_mask["reference"], *target) - _steps(results["baseline"], *target),
        "colour_match_ms": _steps(colour["on"], "colour_match") - _steps(colour["off"], "colour_match"),
        "pixel_boost_256_vs_128_ms": _steps(boost["swap_256"], "swap") - _steps(boost["swap_128"], "swap"),
        "pixel_boost_512_vs_128_ms": _steps(boost["swap_512"], "swap") - _steps(boost["swap_128"], "swap"),
        "face_parser_and_occluder_vs_skin_colour_ms": _steps(
            results["hair_and_occluders"]["face_parser_and_occluder"], "face_regions", "refine_mask"
        )
        - _steps(results["hair_and_occluders"]["skin_colour_model"], "face_regions", "refine_mask"),
    }
    added = {k: round(v, 2) for k, v in added.items()}
    added["edge_delta_e_colour_match_on"] = float(colour["on"]["applied"].get("edge_delta_e", float("nan")))
    added["edge_delta_e_colour_match_off"] = float(colour["off"]["applied"].get("edge_delta_e", float("nan")))
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/face_features.json"))
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    provenance = read_provenance(REPOSITORY) or []
    config = TritonServerConfig.on_free_ports(
        repository=REPOSITORY, log_file=args.out.parent / "face_features_tritonserver.log"
    )
    with TritonServer(config):
        results = measure(config.grpc_url, args.runs)
    report = {
        "added_cost": summary(results),
        "variants": results,
        "models": {m.name: ("stand-in" if m.standin else "real") for m in provenance},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "triton_config": "cpu (python backend + onnxruntime)",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["added_cost"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
