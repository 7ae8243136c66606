"""`make up` / `make down`: the stack comes up healthy, and down stops exactly what up started."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from servers.moondream.model import STANDIN_MARKER as MOONDREAM_STANDIN_MARKER
from servers.qwen_edit.standin import STANDIN_MARKER as QWEN_STANDIN_MARKER
from stack.local import StackConfig, moondream_model_dir, qwen_model_dir
from stack.process import live_group_members

REPO = Path(__file__).resolve().parents[1]


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


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
        states = [line.split()[3] for line in status.stdout.splitlines()]
        assert states == ["healthy"] * 4, status.stdout
        # The orchestrator's start-up log says which models are stand-ins (its probe runs once it serves).
        log = run_dir / "orchestrator.log"
        deadline = time.monotonic() + 60
        while '"event": "models"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        models = next(json.loads(line) for line in log.read_text().splitlines() if '"event": "models"' in line)
        assert models["qwen_edit"].startswith("stand-in") and models["moondream"] == "stand-in"
    finally:
        down = _stack("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stderr
    assert not any(live_group_members(s["pid"]) for s in state["services"])
    # tritonserver runs in a session of its own: it, its stubs and their shared memory are gone too.
    ports = state["ports"]
    for port in (ports["triton_grpc"], ports["qwen_edit"], ports["moondream"], ports["orchestrator"]):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
    triton_pid = next(s["pid"] for s in state["services"] if s["name"] == "triton")
    assert not list(Path("/dev/shm").glob(f"inpaint_triton_{triton_pid}_*")), "shared memory left behind"
    assert "nothing running" in _stack("status", "--run-dir", str(run_dir)).stdout


def test_given_model_folders_are_told_stand_in_or_real_by_their_own_servers_marks(tmp_path: Path) -> None:
    """A stand-in gets the small edit sizes and the stand-in adapter; each server writes its own mark."""
    qwen, moondream = tmp_path / "qwen", tmp_path / "moondream"
    qwen.mkdir()
    moondream.mkdir()
    config = StackConfig(qwen_model=qwen, moondream_model=moondream)
    assert qwen_model_dir(config) == (qwen, False)
    assert moondream_model_dir(config) == (moondream, "moondream2", False)

    (qwen / QWEN_STANDIN_MARKER).write_text("{}")
    (moondream / MOONDREAM_STANDIN_MARKER).write_text("stand-in")

    assert qwen_model_dir(config) == (qwen, True)
    assert moondream_model_dir(config) == (moondream, "transformers-vlm", True)
