"""Run inpainting tasks from the command line.

    python -m orchestrator.run --task_id 71680285 71680286 [--gemini_api_key KEY] [--device cuda:0]
    python -m orchestrator.run --init photo.jpg --mask mask.png --character face.jpg --out out/x

Tasks come from the task store (`--task_store`, default `tasks/`: `tasks/<id>/{init,mask,character}.*`)
or from the three files given. For each task it writes the best image, every candidate, the ledger
(JSON) and a contact sheet (candidates in a grid with their scores, the winner framed), shows a
progress bar over the candidates and ends with a summary table.

Where the work runs:
- `--orchestrator HOST:PORT`: through a running orchestrator's public API;
- otherwise in this process, against the model servers given by `--triton`, `--qwen_edit` and
  `--moondream`, or, when none is given, against servers this command starts itself on free ports
  (on `--device`) and stops at the end.

The Gemini key: `--gemini_api_key` (visible in process lists), `--gemini_key_file`, or GEMINI_API_KEY.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from inpaint.v1 import image_pb2, inpaint_pb2, inpaint_pb2_grpc
from tqdm import tqdm  # type: ignore[import-untyped]

from orchestrator import sample_photos
from orchestrator.config import ENV_PREFIX, OrchestratorConfig, RequestSettings
from orchestrator.contact_sheet import contact_sheet
from orchestrator.errors import InpaintError
from orchestrator.imaging.decode import decode_image
from orchestrator.pipeline import InpaintOutcome, InpaintPipeline, decode_task
from orchestrator.refine.crop import crop_box
from orchestrator.search import EventKind, Ledger, ProgressEvent
from orchestrator.search.signals import CONSISTENCY, IDENTITY, REALISM
from orchestrator.tasks import TaskStore
from servers.common.config import load_config
from tools.stack import Ports, Stack, StackConfig, StackError


@dataclass(frozen=True)
class TaskSource:
    name: str
    init: bytes
    mask: bytes
    character: bytes
    out: Path


def _sources(args: argparse.Namespace) -> list[TaskSource]:
    if args.task_id:
        store = TaskStore(args.task_store)
        sources = []
        for task_id in args.task_id:
            files = store.find(task_id)
            out = args.out / task_id if args.out else files.folder / "out"
            sources.append(TaskSource(task_id, *files.read(), out=out))
        return sources
    missing = [name for name in ("init", "mask", "character") if getattr(args, name) is None]
    if missing:
        raise InpaintError(f"give --task_id, or all of --init, --mask and --character (missing: {', '.join(missing)})")
    out = args.out or Path("out") / args.init.stem
    return [
        TaskSource(args.init.stem, args.init.read_bytes(), args.mask.read_bytes(), args.character.read_bytes(), out)
    ]


@dataclass
class TaskReport:
    """What the CLI writes and summarises, whichever way the task ran."""

    name: str
    out: Path
    best_id: str
    ledger: Ledger | None
    ledger_dict: dict[str, object]
    best: np.ndarray
    refined_mask: np.ndarray
    candidates: dict[str, np.ndarray]
    timings_s: dict[str, float]
    stand_in_models: list[str]
    notes: list[str]
    degraded: bool


def write_report(report: TaskReport) -> None:
    out = report.out
    (out / "candidates").mkdir(parents=True, exist_ok=True)
    (out / "best.png").write_bytes(sample_photos.encode_png(report.best))
    (out / "refined_mask.png").write_bytes(sample_photos.encode_png(report.refined_mask))
    for cid, image in report.candidates.items():
        (out / "candidates" / f"{cid}.png").write_bytes(sample_photos.encode_png(image))
    document = {
        "task": report.name,
        "best_id": report.best_id,
        "degraded": report.degraded,
        "stand_in_models": report.stand_in_models,
        "notes": report.notes,
        "timings_s": report.timings_s,
        "ledger": report.ledger_dict,
    }
    (out / "ledger.json").write_text(json.dumps(document, indent=2) + "\n")
    if report.candidates:
        box = crop_box(report.refined_mask, 0.6)
        (out / "contact_sheet.png").write_bytes(
            sample_photos.encode_png(contact_sheet(report.ledger_dict, report.candidates, box.slices()))
        )


def _from_outcome(source: TaskSource, outcome: InpaintOutcome) -> TaskReport:
    return TaskReport(
        name=source.name,
        out=source.out,
        best_id=outcome.ledger.best_id or "",
        ledger=outcome.ledger,
        ledger_dict=outcome.ledger.to_dict(),
        best=outcome.image,
        refined_mask=outcome.mask.mask,
        candidates=dict(outcome.images),
        timings_s=outcome.timings_s,
        stand_in_models=outcome.stand_in_models,
        notes=outcome.notes,
        degraded=outcome.degraded,
    )


class ProgressBar:
    def __init__(self, name: str) -> None:
        self.bar = tqdm(total=0, desc=name, unit="cand", leave=True, file=sys.stderr)

    def __call__(self, event: ProgressEvent) -> None:
        self.bar.total = event.planned
        if event.kind == EventKind.CANDIDATE_SCORED:
            self.bar.set_postfix_str(f"{event.candidate_id} P={event.potential:.2f}" if event.potential else "")
        self.bar.n = event.scored
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


async def run_in_process(
    config: OrchestratorConfig,
    sources: list[TaskSource],
    settings: RequestSettings,
    api_key: str | None,
    timeout_s: float,
    failures: dict[str, str],
) -> list[TaskReport]:
    """Every task in turn; a task that fails is recorded in `failures` and the others still run."""
    pipeline = InpaintPipeline(config, gemini_api_key=api_key)
    reports = []
    try:
        pipeline.check_ready()
        for source in sources:
            task = decode_task(source.init, source.mask, source.character, config.max_image_pixels)
            bar = ProgressBar(source.name)
            try:
                outcome = await pipeline.run(task, settings, request_id=source.name, deadline_s=timeout_s, on_event=bar)
            except InpaintError as error:
                failures[source.name] = str(error)
                continue
            finally:
                bar.close()
            report = _from_outcome(source, outcome)
            write_report(report)
            reports.append(report)
    finally:
        await pipeline.aclose()
    return reports


def _decode_png(image: image_pb2.Image) -> np.ndarray:
    return decode_image(image.data, "response")


def run_remote(
    address: str,
    sources: list[TaskSource],
    settings: inpaint_pb2.SearchSettings,
    timeout_s: float,
    failures: dict[str, str] | None = None,
) -> list[TaskReport]:
    """Every task through the public API; failures are recorded (or raised when `failures` is None)."""
    channel = grpc.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 256 << 20)]
    )
    stub = inpaint_pb2_grpc.InpaintServiceStub(channel)
    reports = []
    for source in sources:
        request = inpaint_pb2.InpaintRequest(
            request_id=f"cli-{source.name}-{int(time.time())}",
            images=inpaint_pb2.TaskImages(
                init_image=image_pb2.Image(data=source.init),
                mask=image_pb2.Image(data=source.mask),
                character_image=image_pb2.Image(data=source.character),
            ),
            settings=settings,
            return_candidate_images=True,
        )
        bar = tqdm(total=0, desc=source.name, unit="cand", file=sys.stderr)
        result: inpaint_pb2.InpaintResponse | None = None
        try:
            for message in stub.StreamInpaint(inpaint_pb2.StreamInpaintRequest(request=request), timeout=timeout_s):
                if message.HasField("progress"):
                    bar.total, bar.n = message.progress.planned, message.progress.scored
                    bar.refresh()
                else:
                    result = message.result
        except grpc.RpcError as error:
            if failures is None:
                channel.close()
                raise
            failures[source.name] = f"{error.code().name}: {error.details()}"
            continue
        finally:
            bar.close()
        if result is None:
            failures = {} if failures is None else failures
            failures[source.name] = "the stream ended without a result"
            continue
        ledger = json.loads(result.ledger_json)
        reports.append(
            TaskReport(
                name=source.name,
                out=source.out,
                best_id=result.best_candidate_id,
                ledger=None,
                ledger_dict=ledger,
                best=_decode_png(result.image),
                refined_mask=_decode_png(result.refined_mask)[..., 0] > 127,
                candidates={c.candidate_id: _decode_png(c.image) for c in result.candidate_images},
                timings_s=dict(result.timings_seconds),
                stand_in_models=list(result.stand_in_models),
                notes=list(result.notes),
                degraded=result.degraded,
            )
        )
        write_report(reports[-1])
    channel.close()
    return reports


def summary_table(reports: list[TaskReport]) -> str:
    rows: list[tuple[str, ...]] = [
        ("task", "best", "potential", "realism", "identity", "consistency", "candidates", "time s", "flags")
    ]
    for r in reports:
        candidates: list[dict[str, Any]] = r.ledger_dict["candidates"]  # type: ignore[assignment]
        best: dict[str, Any] = next((c for c in candidates if c["candidate_id"] == r.best_id), {})
        # What each weighted signal contributed to the winner's potential; * = scored locally (stood in).
        terms = {t["signal"]: t for t in best.get("potential_terms", [])}
        flags = ("degraded " if r.degraded else "") + ("stand-ins" if r.stand_in_models else "")
        rows.append(
            (
                r.name,
                r.best_id,
                f"{best.get('potential') or 0:.2f}",
                *(
                    f"{terms[k]['value']:.1f}{'*' if terms[k]['stood_in'] else ''}" if k in terms else "-"
                    for k in (REALISM, IDENTITY, CONSISTENCY)
                ),
                str(len(candidates)),
                f"{r.timings_s.get('total', 0):.1f}",
                flags.strip(),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task_id", nargs="+", help="task ids in the task store")
    p.add_argument("--task_store", type=Path, default=Path("tasks"))
    p.add_argument("--init", type=Path)
    p.add_argument("--mask", type=Path)
    p.add_argument("--character", type=Path)
    p.add_argument("--out", type=Path, help="output folder (per task: <out>/<task_id>/)")
    p.add_argument("--gemini_api_key", default=None, help="visible in process lists; prefer --gemini_key_file")
    p.add_argument("--gemini_key_file", type=Path, default=None)
    p.add_argument("--device", default="cpu", help="device of the model servers this command starts (cpu, cuda:0)")
    p.add_argument("--orchestrator", default=None, help="HOST:PORT of a running orchestrator")
    p.add_argument("--triton", default=None, help="HOST:PORT of Triton's gRPC")
    p.add_argument("--qwen_edit", default=None, help="HOST:PORT of a Qwen-Edit server")
    p.add_argument("--moondream", default=None, help="HOST:PORT of a Moondream server")
    p.add_argument("--config", type=Path, default=None, help="orchestrator settings file (TOML/JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k_global", type=int)
    p.add_argument("--m_global", type=int)
    p.add_argument("--k_local", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per task")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        sources = _sources(args)
        for source in sources:  # bad inputs fail here, before any server is started
            decode_task(source.init, source.mask, source.character, OrchestratorConfig.max_image_pixels)
    except (InpaintError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = RequestSettings(
        k_global=args.k_global,
        m_global=args.m_global,
        k_local=args.k_local,
        num_inference_steps=args.steps,
        seed=args.seed,
    )
    servers = [args.triton, args.qwen_edit, args.moondream]
    if any(servers) and not all(servers):
        print("error: give all of --triton, --qwen_edit and --moondream, or none of them", file=sys.stderr)
        return 2
    if args.orchestrator and (args.gemini_api_key or args.gemini_key_file):
        print("note: with --orchestrator the Gemini key is the orchestrator's; --gemini_* is ignored", file=sys.stderr)
    failures: dict[str, str] = {}
    started = time.perf_counter()
    try:
        if args.orchestrator:
            proto = inpaint_pb2.SearchSettings(seed=args.seed)
            for name, value in (
                ("k_global", args.k_global),
                ("m_global", args.m_global),
                ("k_local", args.k_local),
                ("num_inference_steps", args.steps),
            ):
                if value is not None:
                    setattr(proto, name, value)
            reports = run_remote(args.orchestrator, sources, proto, args.timeout, failures)
        else:
            config = load_config(
                OrchestratorConfig, ["--config", str(args.config)] if args.config else [], env_prefix=ENV_PREFIX
            )
            if args.gemini_key_file:
                config = replace(config, gemini_key_file=args.gemini_key_file)
            if args.triton and args.qwen_edit and args.moondream:
                config = replace(
                    config, triton_url=args.triton, qwen_edit_target=args.qwen_edit, moondream_target=args.moondream
                )
                reports = asyncio.run(
                    run_in_process(config, sources, settings, args.gemini_api_key, args.timeout, failures)
                )
            else:
                ports = Ports.free()
                run_dir = Path(tempfile.mkdtemp(prefix="inpaint-cli-"))
                print(
                    f"starting the model servers on {args.device} (logs in {run_dir}) ...", file=sys.stderr, flush=True
                )
                with Stack(run_dir, StackConfig(ports=ports, device=args.device, orchestrator=False)) as stack:
                    config = replace(
                        config,
                        triton_url=f"127.0.0.1:{ports.triton_grpc}",
                        triton_repository=stack.config.triton_repository,
                        qwen_edit_target=f"127.0.0.1:{ports.qwen_edit}",
                        moondream_target=f"127.0.0.1:{ports.moondream}",
                    )
                    reports = asyncio.run(
                        run_in_process(config, sources, settings, args.gemini_api_key, args.timeout, failures)
                    )
    except (InpaintError, StackError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print()
    print(summary_table(reports))
    for report in reports:
        if report.stand_in_models:
            print(f"\n{report.name}: STAND-IN models ({', '.join(report.stand_in_models)}): outputs are noise.")
        for note in report.notes:
            print(f"{report.name}: {note}")
        print(f"{report.name}: wrote {report.out}/ (best.png, candidates/, ledger.json, contact_sheet.png)")
    for name, reason in failures.items():
        print(f"{name}: FAILED: {reason}")
    print(f"\n{len(reports)} task(s) done, {len(failures)} failed, in {time.perf_counter() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
