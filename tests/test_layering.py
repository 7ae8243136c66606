"""The layers import downward only (docs/architecture.md, "Layers").

    tools/ bench/ tests/  >  cli/  >  stack/  >  gateway/, orchestrator/, servers/<model>/  >  servers/common/  >  ...
    (... the Triton contracts, then the generated code)

A lower layer importing a higher one (serving code importing dev tooling, a server importing the
orchestrator, the shared scaffolding importing one model server) is a failure naming the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# package (a folder of the repository) -> top-level modules of this repository it must not import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "orchestrator": ("tools", "stack", "cli", "bench", "tests"),
    "servers": ("orchestrator", "tools", "stack", "cli", "bench", "tests"),
    "stack": ("cli", "tools", "bench", "tests"),
    "cli": ("tools", "bench", "tests"),
    "gateway": ("tools", "stack", "cli", "bench", "tests"),
}
# The shared scaffolding and the model repository's contracts import no model server.
FORBIDDEN_PREFIXES: dict[str, tuple[str, ...]] = {
    "servers/common": ("servers.qwen_edit", "servers.moondream", "servers.triton"),
    "servers/triton": ("servers.qwen_edit", "servers.moondream"),
}


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((REPO_ROOT / folder).rglob("*.py")):
        for line, module in imported_modules(path):
            if any(module == f or module.startswith(f"{f}.") for f in forbidden):
                found.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_no_layer_above_it(package: str) -> None:
    assert violations(package, FORBIDDEN[package]) == []


@pytest.mark.parametrize("folder", sorted(FORBIDDEN_PREFIXES))
def test_shared_code_imports_no_model_server(folder: str) -> None:
    assert violations(folder, FORBIDDEN_PREFIXES[folder]) == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk finds `import x.y` and `from x.y import z` alike (so a green run means something)."""
    source = tmp_path / "m.py"
    source.write_text("import tools.models\nfrom stack.local import Stack\nfrom . import sibling\n")
    assert [m for _, m in imported_modules(source)] == ["tools.models", "stack.local"]
