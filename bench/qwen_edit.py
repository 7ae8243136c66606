"""Benchmark the Qwen-Image-Edit server: 7 seeds as one batched request against 7 one-seed requests, and
the cost of the edit resolution (tokens and seconds per denoising step) before and after the condition
image followed the output size.

    python -m bench.qwen_edit --out bench/results/qwen_edit.json [--steps 12] [--seeds 7] [--repeats 3]
        [--resolution-sizes 512,768,1024] [--resolution-steps 2] [--skip-batching]

Resolution: "before" is what the search used to ask for, a crop of each size edited at a 512 square with the
condition image at about 1024x1024 (`--condition-pixels 1048576`); "after" edits the crop at its own size
with the condition image at that size (the server's default). Tokens per step are the transformer's
sequence: output latent patches plus condition latent patches (one pass; true CFG runs two).

Starts the real server process (from .venv-qwen) on 127.0.0.1 on the real checkpoint when
models/real/qwen_image_edit exists, on the tiny stand-in otherwise, and records which. Reports the
wall-time ratio (7 one-seed requests / one 7-seed request), the time per denoising step (from the
server's own step timing), and the server's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from inpaint.v1 import image_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc
from PIL import Image

from orchestrator import sample_photos
from stack.process import REPO_ROOT, ModelServerProcess, ServerProcessConfig

QWEN_PYTHON = Path(os.environ.get("INPAINT_QWEN_PYTHON", REPO_ROOT / ".venv-qwen" / "bin" / "python"))
REAL_DIR = REPO_ROOT / "models" / "real" / "qwen_image_edit"
STANDIN_DIR = REPO_ROOT / "models" / "standins" / "qwen_edit"
NEGATIVE_PROMPT = "CGI, painted, plastic skin, artifacts, blur, deformed features"


def _memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in KiB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def _face_crop(size: int) -> image_pb2.Image:
    face = sample_photos.astronaut()[:256, 96:352]
    buffer = io.BytesIO()
    Image.fromarray(face).resize((size, size), Image.Resampling.LANCZOS).save(buffer, format="PNG")
    return image_pb2.Image(data=buffer.getvalue(), mime_type="image/png")


def _model_dir(requested: Path | None) -> Path:
    if requested is not None:
        return requested
    if (REAL_DIR / "model_index.json").exists():
        return REAL_DIR
    if not (STANDIN_DIR / "model_index.json").exists():
        subprocess.run(
            [str(QWEN_PYTHON), "-m", "servers.qwen_edit.standin", "--out", str(STANDIN_DIR)], cwd=REPO_ROOT, check=True
        )
    return STANDIN_DIR


def _tokens(width: int, height: int, multiple: int) -> int:
    return (width // multiple) * (height // multiple)


def _resolution(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """seconds and tokens per denoising step, before and after, per crop size (one seed per request)."""
    rows: dict[str, Any] = {}
    for label, extra in (("before", ["--condition-pixels", str(1024 * 1024)]), ("after", [])):
        # A stand-in call at 1024 on a CPU outlasts the default connection age and its grace.
        server_args = ["--model-dir", str(model_dir), "--max-connection-age-grace-s", "3600", *extra]
        if args.torch_threads:
            server_args += ["--torch-threads", str(args.torch_threads)]
        if args.device:
            server_args += ["--device", args.device]
        config = ServerProcessConfig("servers.qwen_edit", python=QWEN_PYTHON, args=server_args, log_file=args.log)
        with ModelServerProcess(config) as process:
            stub = qwen_edit_pb2_grpc.QwenEditServiceStub(process.channel())
            for size in args.resolution_sizes:
                output = 512 if label == "before" else size
                response = stub.Edit(
                    qwen_edit_pb2.EditRequest(
                        image=_face_crop(size),
                        prompt="Refine the swapped face: match the scene's lighting, photorealistic.",
                        negative_prompt=NEGATIVE_PROMPT,
                        num_inference_steps=args.resolution_steps,
                        true_cfg_scale=args.true_cfg_scale,
                        seeds=[1000],
                        width=output,
                        height=output,
                    ),
                    timeout=args.timeout,
                )
                multiple = 8 if response.stand_in else 16  # the VAE's scale factor * 2
                condition = (response.condition_width, response.condition_height)
                rows.setdefault(str(size), {})[label] = {
                    "output_size": [output, output],
                    "condition_size": list(condition),
                    "tokens_per_step": _tokens(output, output, multiple) + _tokens(*condition, multiple),
                    "seconds_per_step": response.seconds_per_step,
                    "transformer_passes_per_step": 2 if args.true_cfg_scale > 1 else 1,
                }
    return {
        "crop_sizes": rows,
        "steps": args.resolution_steps,
        "true_cfg_scale": args.true_cfg_scale,
        # The first step is timed from the pipeline call's start, so it also holds the VAE encoding of the
        # condition image; with few steps that weighs in.
        "note": "seconds_per_step includes the condition image's VAE encoding in the first step",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    model_dir = _model_dir(args.model_dir)
    resolution = _resolution(args, model_dir) if args.resolution_sizes else None
    if args.skip_batching:
        return {
            "benchmark": "qwen_edit",
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": args.device or "auto"},
            "model": {"dir": str(model_dir), "stand_in": (model_dir / "STANDIN.json").exists()},
            "resolution": resolution,
        }
    server_args = [
        "--model-dir",
        str(model_dir),
        "--condition-pixels",
        str(args.condition_pixels),
        "--max-batch",
        str(args.seeds),
        "--max-seeds",
        str(max(args.seeds, 16)),
        "--max-queue",
        "2",
    ]
    if args.torch_threads:
        server_args += ["--torch-threads", str(args.torch_threads)]
    if args.device:
        server_args += ["--device", args.device]
    config = ServerProcessConfig("servers.qwen_edit", python=QWEN_PYTHON, args=server_args, log_file=args.log)
    seeds = list(range(1000, 1000 + args.seeds))

    with ModelServerProcess(config) as process:
        assert process.process is not None
        memory_after_load = _memory_kib(process.process.pid)
        stub = qwen_edit_pb2_grpc.QwenEditServiceStub(process.channel())

        def request(request_seeds: list[int]) -> qwen_edit_pb2.EditRequest:
            return qwen_edit_pb2.EditRequest(
                image=_face_crop(args.input_size),
                prompt="Refine the swapped face: match the scene's lighting and skin texture, photorealistic.",
                negative_prompt=NEGATIVE_PROMPT,
                num_inference_steps=args.steps,
                true_cfg_scale=args.true_cfg_scale,
                seeds=request_seeds,
                width=args.size,
                height=args.size,
            )

        warm = stub.Edit(request(seeds[:1]), timeout=args.timeout)  # also caches the prompt encoding
        batched_seconds: list[float] = []
        sequential_seconds: list[float] = []
        batched_step: list[float] = []
        single_step: list[float] = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            batched = stub.Edit(request(seeds), timeout=args.timeout)
            batched_seconds.append(time.perf_counter() - started)
            batched_step.append(batched.seconds_per_step)
            assert len(batched.images) == args.seeds and {i.batch_size for i in batched.images} == {args.seeds}

            started = time.perf_counter()
            for seed in seeds:
                single = stub.Edit(request([seed]), timeout=args.timeout)
                single_step.append(single.seconds_per_step)
            sequential_seconds.append(time.perf_counter() - started)
        memory_peak = _memory_kib(process.process.pid)

    batched_median = statistics.median(batched_seconds)
    sequential_median = statistics.median(sequential_seconds)
    output_size = Image.open(io.BytesIO(batched.images[0].image.data)).size
    return {
        "benchmark": "qwen_edit",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "device": args.device or "auto"},
        "model": {"dir": str(model_dir), "name": warm.model, "stand_in": warm.stand_in},
        "settings": {
            "seeds": args.seeds,
            "steps": args.steps,
            "true_cfg_scale": args.true_cfg_scale,
            "condition_pixels": args.condition_pixels,
            "output_size": list(output_size),
            "repeats": args.repeats,
            "torch_threads": args.torch_threads,
        },
        "batched_request_seconds": {"median": batched_median, "min": min(batched_seconds), "all": batched_seconds},
        "one_seed_requests_seconds": {
            "median": sequential_median,
            "min": min(sequential_seconds),
            "all": sequential_seconds,
        },
        # > 1 means one batched request beats the same seeds one request at a time. The minimum is the figure
        # least disturbed by other work on a shared machine.
        "speedup_batched_over_one_at_a_time": {
            "median": sequential_median / batched_median,
            "min": min(sequential_seconds) / min(batched_seconds),
        },
        # Medians of the server's own mean step time per call (a step of a batched call runs every seed once).
        "seconds_per_denoising_step": {
            "batch_of_seeds": statistics.median(batched_step),
            "batch_of_seeds_per_image": statistics.median(batched_step) / args.seeds,
            "one_seed": statistics.median(single_step),
            "batch_of_seeds_min": min(batched_step),
            "one_seed_min": min(single_step),
        },
        "denoising_steps_per_image": batched.denoising_steps,
        "resolution": resolution,
        "server_memory_mib": {
            "rss_after_load": memory_after_load.get("VmRSS", 0) / 1024,
            "peak_rss": memory_peak.get("VmHWM", 0) / 1024,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/qwen_edit.json"))
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--true-cfg-scale", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    # The stand-in works at 128x128 here; pass 1048576 and 1024 for the real model's working size.
    parser.add_argument("--condition-pixels", type=int, default=128 * 128)
    parser.add_argument("--size", type=int, default=128, help="output width and height")
    parser.add_argument("--input-size", type=int, default=512, help="side of the square face crop sent")
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--resolution-sizes",
        type=lambda text: [int(v) for v in text.split(",") if v],
        default=[512, 768, 1024],
        help="crop sides for the before/after resolution figures (empty: skip them)",
    )
    parser.add_argument("--resolution-steps", type=int, default=2)
    parser.add_argument("--skip-batching", action="store_true", help="only the resolution figures")
    parser.add_argument("--log", type=Path, default=Path("bench/results/qwen_edit_server.log"))
    args = parser.parse_args(argv)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
