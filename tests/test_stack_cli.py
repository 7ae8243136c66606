"""`make up` / `make down`: the stack comes up healthy, and down stops exactly what up started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from servers.triton.launcher import live_group_members

REPO = Path(__file__).resolve().parents[1]


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.stack", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_up_status_down(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    up = _stack("up", "--run-dir", str(run_dir), "--free-ports")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        state = json.loads((run_dir / "stack.json").read_text())
        names = [s["name"] for s in state["services"]]
        assert names == ["triton", "qwen_edit", "moondream", "orchestrator"]
        assert all(live_group_members(s["pid"]) for s in state["services"])
        for name in names:
            assert (run_dir / f"{name}.log").is_file(), "every service logs into the run folder"
        status = _stack("status", "--run-dir", str(run_dir))
        assert status.stdout.count("healthy") == 4, status.stdout
        # The orchestrator's start-up log says which models are stand-ins.
        assert '"event": "models"' in (run_dir / "orchestrator.log").read_text()
    finally:
        down = _stack("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stderr
    assert not any(live_group_members(s["pid"]) for s in state["services"])
    assert "nothing running" in _stack("status", "--run-dir", str(run_dir)).stdout
