"""The contact sheet and the summary table read the ledger's JSON form."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cli.run import TaskReport, summary_table
from orchestrator.contact_sheet import BEST, PAD, THUMB, contact_sheet


def _ledger() -> dict[str, object]:
    def candidate(cid: str, potential: float, stood_in: bool) -> dict[str, object]:
        return {
            "candidate_id": cid,
            "stage": "global",
            "seed": 7,
            "scores": [],
            "potential": potential,
            "potential_terms": [
                {"signal": "realism", "value": 8.0, "stood_in": stood_in, "fallback": False},
                {"signal": "identity", "value": 6.0, "stood_in": False, "fallback": False},
                {"signal": "consistency", "value": 9.0, "stood_in": False, "fallback": False},
            ],
        }

    return {"best_id": "g1", "candidates": [candidate("g0", 30.0, True), candidate("g1", 40.0, False)]}


def test_the_winner_is_framed_and_every_candidate_has_a_cell() -> None:
    images = {"g0": np.zeros((64, 64, 3), np.uint8), "g1": np.full((64, 64, 3), 255, np.uint8)}
    sheet = contact_sheet(_ledger(), images)
    assert sheet.shape[1] == 2 * (THUMB + PAD) + PAD
    frame_x = PAD + (THUMB + PAD) - 4  # the second cell's frame, left edge
    assert tuple(sheet[PAD + 10, frame_x]) == BEST
    assert tuple(sheet[PAD + 10, PAD - 4]) != BEST  # the first cell is not framed


def test_summary_table_shows_the_winners_terms_and_marks_stand_ins() -> None:
    report = TaskReport(
        name="t1", out=Path("/tmp"), best_id="g1", ledger=None, ledger_dict=_ledger(),
        best=np.zeros((2, 2, 3), np.uint8), refined_mask=np.ones((2, 2), bool), candidates={},
        timings_s={"total": 1.5}, stand_in_models=["qwen_edit"], notes=[], degraded=True,
    )  # fmt: skip
    table = summary_table([report])
    row = table.splitlines()[1].split()
    assert row[:6] == ["t1", "g1", "40.00", "8.0", "6.0", "9.0"]
    report.best_id = "g0"
    assert summary_table([report]).splitlines()[1].split()[3] == "8.0*"
