"""Run the face stage on a bundled photo pair and write what it made.

    python -m cli.face_demo --out out/face_demo [--triton 127.0.0.1:8001]

Without --triton it starts tritonserver itself on free ports against triton_models/ (prepared by
`make standins` or `make models`) and stops it afterwards. The init image is scikit-image's
astronaut with a mask drawn generously over her head; the character is insightface's Tom Hanks
portrait. Writes init.png, mask.png, refined_mask.png, mask_refinement.png (green: kept, red:
excluded), raw_swap.png, result.png and summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from orchestrator import sample_photos
from orchestrator.contact_sheet import overlay_refinement
from orchestrator.errors import InpaintError
from orchestrator.faces.analysis import FaceAnalyzer
from orchestrator.faces.stage import FaceStage, FaceStageResult
from orchestrator.faces.triton_client import TritonConfig, TritonModels
from servers.triton.provenance import read_provenance
from stack.triton import TritonServer, TritonServerConfig, TritonStartError

REPOSITORY = Path(__file__).resolve().parents[1] / "triton_models"


def write_outputs(out: Path, init: np.ndarray, given: np.ndarray, result: FaceStageResult) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "init.png": init,
        "mask.png": given,
        "refined_mask.png": result.mask.mask,
        "mask_refinement.png": overlay_refinement(init, given, result.mask.mask),
        "raw_swap.png": result.raw_swap,
        "result.png": result.blended,
    }
    for name, array in files.items():
        (out / name).write_bytes(sample_photos.encode_png(array))
    summary: dict[str, object] = {
        "standin_models": result.standin,
        "mask_refined": result.mask.refined,
        "mask_reason": result.mask.reason,
        "target_face": {"bbox": result.target.bbox.round(1).tolist(), "score": round(result.target.score, 3)},
        "character_face": {"bbox": result.character.bbox.round(1).tolist(), "score": round(result.character.score, 3)},
        "changed_pixels": int((result.blended != init).any(axis=2).sum()),
        "changed_outside_refined_mask": int(((result.blended != init).any(axis=2) & ~result.mask.mask).sum()),
        "timings_s": {k: round(v, 4) for k, v in result.timings_s.items()},
        "files": sorted(files),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run(triton_url: str, standin: bool, out: Path) -> dict[str, object]:
    init = sample_photos.astronaut()
    given = sample_photos.astronaut_face_mask()
    models = TritonModels(TritonConfig(url=triton_url))
    try:
        models.check_ready()
        stage = FaceStage(FaceAnalyzer(models), standin=standin)
        result = stage.run(init, given, sample_photos.tom_hanks())
    finally:
        models.close()
    return write_outputs(out, init, given, result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/face_demo"))
    parser.add_argument("--triton", default=None, help="gRPC address of a running Triton; default: start one")
    args = parser.parse_args(argv)
    provenance = read_provenance(REPOSITORY) or []
    standin_names = [m.name for m in provenance if m.standin]
    if args.triton is None and not provenance:
        print("error: triton_models/ is not prepared; run `make standins` or `make models`", file=sys.stderr)
        return 1
    if standin_names:
        print("=" * 78)
        print(f"STAND-IN MODELS ({', '.join(standin_names)}): random weights, the swap is noise.")
        print("This shows the pipeline working end to end, not the quality. `make models` gets real weights.")
        print("=" * 78)
    started = time.perf_counter()
    try:
        if args.triton is None:
            config = TritonServerConfig.on_free_ports(repository=REPOSITORY, log_file=args.out / "tritonserver.log")
            print(f"starting tritonserver on {config.grpc_url} (log: {config.log_file}) ...", flush=True)
            with TritonServer(config):
                summary = run(config.grpc_url, bool(standin_names), args.out)
        else:
            summary = run(args.triton, bool(standin_names), args.out)
    except (InpaintError, TritonStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"face stage done in {time.perf_counter() - started:.1f} s (including Triton start-up)")
    print(f"  mask: {summary['mask_reason']}")
    print(
        f"  changed pixels: {summary['changed_pixels']}, "
        f"outside the refined mask: {summary['changed_outside_refined_mask']}"
    )
    timings = summary["timings_s"]
    assert isinstance(timings, dict)
    print("  timings: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))
    print(f"  wrote {args.out}/: " + ", ".join(summary["files"]) + ", summary.json")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
