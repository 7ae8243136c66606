"""`make qwen-edit-model` fetches a recorded commit, never a moving branch."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from servers.qwen_edit import fetch

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_each_checkpoint_records_at_most_one_full_commit() -> None:
    for repo, commit in fetch.PINNED.values():
        assert repo.startswith("Qwen/Qwen-Image-Edit")
        assert commit is None or fetch._COMMIT.fullmatch(commit), commit


@pytest.mark.parametrize("revision", ["main", "v1", COMMIT[:12]])
def test_a_branch_tag_or_short_commit_is_refused(revision: str) -> None:
    with pytest.raises(fetch.UnpinnedError, match="revision: must be a full 40-hex commit"):
        fetch.pinned_revision("edit", revision)


def test_an_unrecorded_checkpoint_is_refused_rather_than_fetched_at_main(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fetch.PINNED, "edit", ("Qwen/Qwen-Image-Edit", None))
    with pytest.raises(fetch.UnpinnedError, match="no commit recorded"):
        fetch.pinned_revision("edit")


def test_the_recorded_commit_is_what_is_downloaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    hub = types.ModuleType("huggingface_hub")
    hub.snapshot_download = lambda repo, **kwargs: calls.append({"repo": repo, **kwargs})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.setitem(fetch.PINNED, "edit-2511", ("Qwen/Qwen-Image-Edit-2511", COMMIT))

    fetch.fetch(tmp_path, "edit-2511")

    assert calls == [{"repo": "Qwen/Qwen-Image-Edit-2511", "revision": COMMIT, "local_dir": tmp_path}]
    assert (tmp_path / fetch.REVISION_FILE).read_text() == f"Qwen/Qwen-Image-Edit-2511@{COMMIT}\n"
