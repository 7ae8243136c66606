"""The documentation that is generated from code is up to date."""

from __future__ import annotations

from pathlib import Path

from tools.config_reference import reference

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_configuration_reference_is_current() -> None:
    assert (DOCS / "configuration.md").read_text() == reference(), (
        "run: python -m tools.config_reference > docs/configuration.md"
    )


def test_readme_shows_the_two_quick_start_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
