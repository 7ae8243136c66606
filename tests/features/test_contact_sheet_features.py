"""The contact sheet says what the face stage applied and the colour difference at the edge."""

from __future__ import annotations

from typing import Any

import numpy as np

from orchestrator.contact_sheet import LABEL_HEIGHT, PAD, THUMB, contact_sheet, features_label


def _record(cid: str, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "candidate_id": cid,
        "stage": "global",
        "seed": 0,
        "potential": 40.0,
        "potential_terms": [],
        "generator_info": info,
    }


def test_the_label_names_the_applied_features() -> None:
    info = {
        "swap_size": 512,
        "colour_match": "skipped: too little skin to measure (3 px)",
        "character_photos": 3,
        "mask_source": "built from the face",
        "edge_delta_e": 4.26,
    }
    assert features_label(info) == "swap 512  colour skipped  3 photos  auto mask  dE 4.3"
    assert features_label({"character_photos": 1, "mask_source": "given"}) == ""


def test_each_candidate_shows_its_edge_colour_difference_below_its_scores() -> None:
    ledger = {"best_id": "g1", "candidates": [_record("g0", {"edge_delta_e": 3.0}), _record("g1", {})]}
    images = {cid: np.full((64, 64, 3), 90, np.uint8) for cid in ("g0", "g1")}
    sheet = contact_sheet(ledger, images)
    feature_row = (slice(PAD + THUMB + 58, PAD + THUMB + LABEL_HEIGHT), slice(PAD, PAD + THUMB))
    second = (feature_row[0], slice(2 * PAD + THUMB + PAD, 2 * PAD + 2 * THUMB))
    assert (sheet[feature_row] != sheet[0, 0]).any(), "g0's line is drawn"
    assert not (sheet[second] != sheet[0, 0]).any(), "g1 has nothing to say there"
