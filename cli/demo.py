"""`make demo`: bring the stack up, run one task through the public API, write and summarise, bring it down.

    python -m cli.demo [--out out/demo] [--device cpu]

The task is a real photo pair shipped in pip packages: scikit-image's astronaut (init, with a mask
drawn over her head) and insightface's Tom Hanks portrait (character). Writes the final image, every
candidate, the ledger and the contact sheet under --out, then prints a one-screen summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import grpc
from inpaint.v1 import inpaint_pb2

from cli.run import TaskSource, run_remote, summary_table
from orchestrator import sample_photos
from stack.local import RUNS, Stack, StackConfig, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    inputs = args.out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    source = TaskSource(
        "astronaut_as_tom_hanks",
        sample_photos.encode_png(sample_photos.astronaut()),
        sample_photos.encode_png(sample_photos.astronaut_face_mask()),
        sample_photos.encode_png(sample_photos.tom_hanks()),
        out=args.out,
    )
    for name, data in (("init.png", source.init), ("mask.png", source.mask), ("character.png", source.character)):
        (inputs / name).write_bytes(data)
    run_dir = RUNS / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"bringing the stack up (logs in {run_dir}/) ...", flush=True)
    started = time.perf_counter()
    try:
        with Stack(run_dir, StackConfig(device=args.device)) as stack:
            print(f"stack up in {time.perf_counter() - started:.1f} s; running the task ...", flush=True)
            address = f"127.0.0.1:{stack.config.ports.orchestrator}"
            [report] = run_remote(address, [source], inpaint_pb2.SearchSettings(), timeout_s=3600)
    except (StackError, grpc.RpcError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    ledger = report.ledger_dict
    best = next(c for c in ledger["candidates"] if c["candidate_id"] == report.best_id)  # type: ignore[attr-defined]
    print()
    print(summary_table([report]))
    print()
    print(f"winner {report.best_id} (stage {best['stage']}, seed {best['seed']}), potential {best['potential']:.2f}")
    for term in best["potential_terms"]:
        how = ""
        if term["stood_in"]:
            how = f"  <- scored locally by {term['source_signal']} ({term['reason']})"
        elif term["fallback"]:
            how = f"  <- fallback: {term['reason']}"
        print(f"  {term['signal']:12s} {term['value']:5.2f} x {term['weight']:.1f}  from {term['source']}{how}")
    realism = next((t for t in best["potential_terms"] if t["signal"] == "realism"), None)
    if realism is not None and realism["stood_in"]:
        print(f"realism was scored locally ({realism['source_signal']}: texture match), not by Gemini")
    print("time per stage: " + ", ".join(f"{k} {v:.2f} s" for k, v in report.timings_s.items() if "." not in k))
    if report.stand_in_models:
        print(
            f"STAND-IN models ({', '.join(report.stand_in_models)}): images are noise; `make models` gets real weights"
        )
    print(f"wrote {args.out}/: best.png, contact_sheet.png, ledger.json, candidates/ (inputs in {inputs}/)")
    (args.out / "summary.json").write_text(
        json.dumps(
            {"best_id": report.best_id, "timings_s": report.timings_s, "stand_ins": report.stand_in_models}, indent=2
        )
    )
    print(f"stack down; {time.perf_counter() - started:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
