"""Benchmark the peak memory of `python -m tools.models.prepare` against the largest file it rewrites.

    python -m bench.prepare_memory --out bench/results/prepare_memory.json [--inswapper-bytes 554253681]

The init container that prepares Triton's model repository has a memory limit sized from this figure
(deploy/components/weights-volumes/jobs.yaml). The benchmark writes the stand-ins with inswapper_128
padded to the real file's size (554 MB, the largest of the four), runs the preparation command in a
child process exactly as the container does, and records the child's peak resident set size
(`ru_maxrss` from wait4, so only that child is counted) and its ratio to the largest file.

Linux carries a process's memory high-water mark across fork and exec into `ru_maxrss`: a child
spawned straight from this process (or from pytest) would report at least the spawner's own peak,
several GB after writing the padded stand-in. So a tiny launcher process spawns the preparation
command and reports its `ru_maxrss`; what the command inherits is then the launcher's few MB, below
anything the command itself uses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from servers.triton.contracts import ALL_MODELS
from tools.models.standins import REAL_INSWAPPER_BYTES, write_standins

REPO_ROOT = Path(__file__).resolve().parents[1]

# Runs argv[1:], then prints {"exit_code", "maxrss_kib"} of that child as JSON on stdout.
_LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"exit_code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


@dataclass(frozen=True)
class PrepareMemory:
    exit_code: int
    peak_rss_bytes: int
    largest_file_bytes: int
    largest_file: str
    stderr: str

    @property
    def ratio(self) -> float:
        return self.peak_rss_bytes / self.largest_file_bytes


def empty_repository(target: Path) -> Path:
    """A copy of this project's model repository configurations, without model files."""
    for contract in ALL_MODELS:
        source = REPO_ROOT / "triton_models" / contract.triton_name
        shutil.copytree(source, target / contract.triton_name, ignore=shutil.ignore_patterns("1"))
    return target


def measure_prepare(weights: Path, repository: Path) -> PrepareMemory:
    """Run the preparation command on `weights` in a child process; its peak RSS and exit code."""
    largest = max((weights / c.source_path for c in ALL_MODELS), key=lambda p: p.stat().st_size)
    command = [sys.executable, "-m", "tools.models.prepare", "--weights", str(weights), "--repository", str(repository)]
    launched = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _LAUNCHER, *command], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if launched.returncode != 0:
        raise RuntimeError(f"the measuring launcher failed: {launched.stderr.strip()}")
    report = json.loads(launched.stdout)
    return PrepareMemory(
        exit_code=int(report["exit_code"]),
        peak_rss_bytes=int(report["maxrss_kib"]) * 1024,  # Linux reports KiB
        largest_file_bytes=largest.stat().st_size,
        largest_file=largest.name,
        stderr=launched.stderr,
    )


def measure_on_standins(inswapper_bytes: int, work: Path) -> PrepareMemory:
    """Stand-ins with inswapper padded to `inswapper_bytes`, prepared in a child process."""
    weights = work / "weights"
    write_standins(weights, inswapper_bytes=inswapper_bytes)
    return measure_prepare(weights, empty_repository(work / "repository"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results/prepare_memory.json"))
    parser.add_argument("--inswapper-bytes", type=int, default=REAL_INSWAPPER_BYTES)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="prepare_memory_") as work:
        result = measure_on_standins(args.inswapper_bytes, Path(work))
    if result.exit_code != 0:
        print(f"error: tools.models.prepare exited with {result.exit_code}: {result.stderr.strip()}", file=sys.stderr)
        return 1
    record = {
        **{k: v for k, v in asdict(result).items() if k != "stderr"},
        "peak_rss_mib": round(result.peak_rss_bytes / 2**20, 1),
        "largest_file_mib": round(result.largest_file_bytes / 2**20, 1),
        "peak_over_largest_file": round(result.ratio, 3),
        "bound": 1.5,
        "models": "stand-ins, inswapper_128 padded to the real file's size",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
