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

PARTS = ("face_stage", "qwen_edit", "moondream", "gemini_scoring", "orchestrator")


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
    for part in PARTS:
        path = args.results / f"{part}.json"
        if not path.is_file():
            lines += [f"## {part}", "", "not run", ""]
            continue
        data = json.loads(path.read_text())
        merged[part] = data
        lines += [f"## {part}", "", "| measure | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in flatten(data).items()]
        lines.append("")
    (args.results / "latest.json").write_text(json.dumps(merged, indent=2) + "\n")
    (args.results / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.results / 'latest.json'} and {args.results / 'SUMMARY.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
