"""The command-line tool, in process and through a running orchestrator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from orchestrator import sample_photos
from tests.orchestrator.conftest import LiveStack, write_task

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.run", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def _check_outputs(out: Path, candidates: int) -> dict[str, object]:
    assert (
        (out / "best.png").is_file() and (out / "contact_sheet.png").is_file() and (out / "refined_mask.png").is_file()
    )
    assert len(list((out / "candidates").glob("*.png"))) == candidates
    document: dict[str, object] = json.loads((out / "ledger.json").read_text())
    ledger = document["ledger"]
    assert isinstance(ledger, dict) and len(ledger["candidates"]) == candidates
    assert document["best_id"] == ledger["best_id"]
    return document


def test_cli_runs_task_ids_in_process_against_running_servers(live: LiveStack, tmp_path: Path) -> None:
    ports = live.stack.config.ports
    store = tmp_path / "tasks"
    for task_id in ("71680285", "71680286"):
        write_task(store, task_id)
    config = tmp_path / "small.toml"
    config.write_text("[refinement]\nmin_edit_size = 64\nmax_edit_size = 64\nnum_inference_steps = 2\n")
    done = _cli(
        "--task_id", "71680285", "71680286", "--task_store", str(store), "--config", str(config),
        "--triton", f"127.0.0.1:{ports.triton_grpc}", "--qwen_edit", f"127.0.0.1:{ports.qwen_edit}",
        "--moondream", f"127.0.0.1:{ports.moondream}", "--k_global", "3", "--m_global", "1", "--k_local", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for task_id in ("71680285", "71680286"):
        document = _check_outputs(store / task_id / "out", 4)
        # No Gemini key here: realism was scored locally, and the ledger says so on every scored candidate.
        ledger = document["ledger"]
        assert isinstance(ledger, dict)
        for candidate in ledger["candidates"]:
            realism = next(t for t in candidate["potential_terms"] if t["signal"] == "realism")
            assert realism["stood_in"] and realism["source_signal"] == "realism_local", realism
    assert "71680285" in done.stdout and "71680286" in done.stdout and "potential" in done.stdout
    assert "2 task(s) done, 0 failed" in done.stdout


def test_cli_through_the_orchestrator_writes_every_candidate(live: LiveStack, tmp_path: Path) -> None:
    for name, array in (
        ("init", sample_photos.astronaut()),
        ("mask", sample_photos.astronaut_face_mask()),
        ("character", sample_photos.tom_hanks()),
    ):
        (tmp_path / f"{name}.png").write_bytes(sample_photos.encode_png(array))
    out = tmp_path / "out"
    done = _cli(
        "--orchestrator", live.address, "--init", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
        "--character", str(tmp_path / "character.png"), "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    document = _check_outputs(out, 5)
    assert document["stand_in_models"]


def test_cli_refuses_a_task_id_that_would_escape_the_store(tmp_path: Path) -> None:
    done = _cli("--task_id", "../../etc", "--task_store", str(tmp_path))
    assert done.returncode == 2
    assert "task_id" in done.stderr and "not a task id" in done.stderr


def test_cli_names_the_bad_input_before_starting_anything(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"nope")
    done = _cli(
        "--init", str(tmp_path / "x.png"), "--mask", str(tmp_path / "x.png"), "--character", str(tmp_path / "x.png")
    )
    assert done.returncode == 2
    assert "init_image: is not a decodable image" in done.stderr
    assert "starting the model servers" not in done.stderr


def test_the_readme_client_example_runs(live: LiveStack, tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    for name, array in (
        ("photo.jpg", sample_photos.astronaut()),
        ("mask.png", sample_photos.astronaut_face_mask()),
        ("face.jpg", sample_photos.tom_hanks()),
    ):
        (tmp_path / name).write_bytes(sample_photos.encode_png(array))  # PNG bytes: the service sniffs the format
    code = code.replace("127.0.0.1:50050", live.address)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "result.png").stat().st_size > 1000
    assert "PROGRESS_KIND" in done.stdout or "/" in done.stdout


def test_cli_refuses_some_but_not_all_server_addresses(tmp_path: Path) -> None:
    for name in ("init", "mask", "character"):
        array = sample_photos.astronaut_face_mask() if name == "mask" else sample_photos.astronaut()
        (tmp_path / f"{name}.png").write_bytes(sample_photos.encode_png(array))
    done = _cli(
        "--init", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
        "--character", str(tmp_path / "character.png"), "--triton", "127.0.0.1:1",
    )  # fmt: skip
    assert done.returncode == 2 and "--qwen_edit" in done.stderr
