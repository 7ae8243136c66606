"""Run inpainting tasks from the command line.

    python -m cli.run --task_id 71680285 71680286 [--gemini_api_key KEY] [--device cuda:0]
    python -m cli.run --init photo.jpg --mask mask.png --character face.jpg --out out/x

Tasks come from the task store (`--task_store`, default `tasks/`: `tasks/<id>/{init,mask,character}.*`)
or from the three files given. For each task it writes the best image, every candidate, the ledger
(JSON) and a contact sheet (candidates in a grid with their scores, the winner framed), shows a
progress bar over the candidates and ends with a summary table. A task that fails (a bad image, no
face) is reported with its id and the others still run; the exit status is then 1.

The search settings a request may change (`--k_global`, `--steps`, ...) are the public API's, with the
same bounds, whichever way the work runs. Request ids are derived from the inputs' content.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from inpaint.v1 import image_pb2, inpaint_pb2
from tqdm import tqdm  # type: ignore[import-untyped]

from orchestrator import sample_photos
from orchestrator.client import InpaintClient, content_request_id, search_settings, task_request, timings_s
from orchestrator.config import OVERRIDES, OrchestratorConfig
from orchestrator.contact_sheet import contact_sheet
from orchestrator.errors import InpaintError
from orchestrator.imaging.decode import decode_image
from orchestrator.pipeline import InpaintOutcome, InpaintPipeline
from orchestrator.refine.crop import crop_box
from orchestrator.requests import decode_images, parse_request, request_settings
from orchestrator.search import EventKind, Ledger, ProgressEvent
from orchestrator.search.signals import CONSISTENCY, IDENTITY, REALISM
from orchestrator.tasks import TaskStore
from servers.common.images import DEFAULT_MAX_PIXELS
from servers.common.settings import ConfigError, load_settings
from stack.local import Ports, Stack, StackConfig, StackError

# CLI flag -> public API field, where the CLI's name differs from the API's.
FLAG_ALIASES = {"num_inference_steps": "steps"}


@dataclass(frozen=True)
class TaskSource:
    name: str
    init: bytes
    mask: bytes
    character: bytes
    out: Path

    @property
    def request_id(self) -> str:
        """Derived from the inputs' content: valid for any file name, distinct for distinct inputs."""
        return content_request_id(self.init, self.mask, self.character)


def _sources(args: argparse.Namespace, failures: dict[str, str]) -> list[TaskSource]:
    """The tasks to run; a task id that cannot be read is recorded in `failures` and the others still run."""
    if args.task_id:
        store = TaskStore(args.task_store)
        sources = []
        for task_id in args.task_id:
            try:
                files = store.find(task_id)
                out = args.out / task_id if args.out else files.folder / "out"
                sources.append(TaskSource(task_id, *files.read(), out=out))
            except (InpaintError, OSError) as error:
                failures[task_id] = str(error)
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
    settings: inpaint_pb2.SearchSettings,
    api_key: str | None,
    timeout_s: float,
    failures: dict[str, str],
) -> list[TaskReport]:
    """Every task in turn; a task that fails is recorded in `failures` and the others still run."""
    pipeline = InpaintPipeline(config, gemini_api_key=api_key)
    store = TaskStore(config.task_store)
    reports = []
    try:
        pipeline.check_ready()
        for source in sources:
            # The same parse step as the service's: the same bounds, errors and deadline.
            request = task_request(
                source.init, source.mask, source.character, request_id=source.request_id, settings=settings
            )
            bar = ProgressBar(source.name)
            try:
                task = parse_request(request, config, store, timeout_s)
                outcome = await pipeline.run(task, on_event=bar)
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


def _from_response(source: TaskSource, result: inpaint_pb2.InpaintResponse) -> TaskReport:
    return TaskReport(
        name=source.name,
        out=source.out,
        best_id=result.best_candidate_id,
        ledger=None,
        ledger_dict=json.loads(result.ledger_json),
        best=_decode_png(result.image),
        refined_mask=_decode_png(result.refined_mask)[..., 0] > 127,
        candidates={c.candidate_id: _decode_png(c.image) for c in result.candidate_images},
        timings_s=timings_s(result),
        stand_in_models=list(result.stand_in_models),
        notes=list(result.notes),
        degraded=result.degraded,
    )


def run_remote(
    address: str,
    sources: list[TaskSource],
    settings: inpaint_pb2.SearchSettings,
    timeout_s: float,
    failures: dict[str, str] | None = None,
) -> list[TaskReport]:
    """Every task through the public API; failures are recorded (or raised when `failures` is None)."""
    reports = []
    with InpaintClient(address) as client:
        for source in sources:
            request = task_request(
                source.init, source.mask, source.character,
                request_id=source.request_id, settings=settings, return_candidate_images=True,
            )  # fmt: skip
            bar = tqdm(total=0, desc=source.name, unit="cand", file=sys.stderr)

            def progress(event: inpaint_pb2.ProgressEvent, bar: Any = bar) -> None:
                bar.total, bar.n = event.planned, event.scored
                bar.refresh()

            try:
                result = client.stream(request, timeout_s, progress)
            except grpc.RpcError as error:
                if failures is None:
                    raise
                failures[source.name] = f"{error.code().name}: {error.details()}"
                continue
            finally:
                bar.close()
            reports.append(_from_response(source, result))
            write_report(reports[-1])
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
    for override in OVERRIDES:  # the public API's per-request settings, with its bounds
        flag = FLAG_ALIASES.get(override.name, override.name)
        p.add_argument(
            f"--{flag}",
            dest=override.name,
            type=override.kind,
            help=f"{override.help} ({override.low:g}..{override.high:g})",
        )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per task")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = search_settings({o.name: getattr(args, o.name) for o in OVERRIDES}, seed=args.seed)
    try:
        request_settings(settings)  # the API's bounds, before anything starts
    except InpaintError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures: dict[str, str] = {}
    try:
        sources = _sources(args, failures)
    except (InpaintError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for source in list(sources):  # bad inputs are found here, before any server is started
        try:
            decode_images(source.init, source.mask, source.character, DEFAULT_MAX_PIXELS)
        except InpaintError as error:
            failures[source.name] = str(error)
            sources.remove(source)
    for name, reason in failures.items():
        print(f"error: {name}: {reason}", file=sys.stderr)
    if failures and not sources:
        return 2
    servers = [args.triton, args.qwen_edit, args.moondream]
    if any(servers) and not all(servers):
        print("error: give all of --triton, --qwen_edit and --moondream, or none of them", file=sys.stderr)
        return 2
    if args.orchestrator and (args.gemini_api_key or args.gemini_key_file):
        print("note: with --orchestrator the Gemini key is the orchestrator's; --gemini_* is ignored", file=sys.stderr)
    started = time.perf_counter()
    reports: list[TaskReport] = []
    try:
        if not sources:
            pass
        elif args.orchestrator:
            reports = run_remote(args.orchestrator, sources, settings, args.timeout, failures)
        else:
            flags = ["--config", str(args.config)] if args.config else []
            if args.gemini_key_file:
                flags += ["--gemini.key-file", str(args.gemini_key_file)]
            if all(servers):
                flags += ["--triton.url", args.triton, "--qwen-edit.target", args.qwen_edit]
                flags += ["--moondream.target", args.moondream]
                config = load_settings(OrchestratorConfig, flags)
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
                    flags += [
                        "--triton.url", f"127.0.0.1:{ports.triton_grpc}",
                        "--triton.repository", str(stack.config.triton_repository),
                        "--qwen-edit.target", f"127.0.0.1:{ports.qwen_edit}",
                        "--moondream.target", f"127.0.0.1:{ports.moondream}",
                    ]  # fmt: skip
                    config = load_settings(OrchestratorConfig, flags)
                    reports = asyncio.run(
                        run_in_process(config, sources, settings, args.gemini_api_key, args.timeout, failures)
                    )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (InpaintError, StackError, grpc.RpcError) as error:
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
