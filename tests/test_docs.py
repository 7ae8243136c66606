"""The documentation: what is generated from code is up to date, and the repository's docs stand alone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench.summary import KEY_FIGURES, PARTS
from tools.config_reference import reference

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_reference_is_current() -> None:
    assert (DOCS / "configuration.md").read_text() == reference(), (
        "run: python -m tools.config_reference > docs/configuration.md"
    )


def test_readme_shows_the_two_quick_start_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_no_file_points_to_documents_outside_the_repository() -> None:
    """Design notes kept beside the repository are not shipped with it: nothing may cite them."""
    root = DOCS.parent
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True).stdout
    tracked = [name for name in listing.split("\0") if name]  # names may hold spaces
    pattern = re.compile(r"DESIGN(\.md| section)|\.\./shared/|STYLE\.md")
    offending = []
    for name in tracked:
        path = root / name
        if name == "tests/test_docs.py" or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:  # images and other binary files
            continue
        text = data.decode(errors="replace")
        offending += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert offending == []


def test_make_bench_runs_and_summarises_every_benchmark() -> None:
    """The README's `make bench`: every benchmark of bench/ runs and has its figures in SUMMARY.md."""
    root = DOCS.parent
    benchmarks = {path.stem for path in (root / "bench").glob("*.py")} - {"__init__", "summary"}
    assert set(PARTS) == benchmarks
    assert set(KEY_FIGURES) == benchmarks
    # `make -n` prints the commands, recursive makes' included, without running them.
    plan = subprocess.run(["make", "-n", "bench"], cwd=root, capture_output=True, text=True, check=True).stdout
    assert set(re.findall(r"-m bench\.(\w+)", plan)) == benchmarks | {"summary"}
