"""Figures for people: the contact sheet (every candidate as a thumbnail with its scores, what the face
stage applied and the colour difference at the mask's edge, the winner framed) and the mask-refinement
overlay. Pure drawing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

THUMB = 256
LABEL_HEIGHT = 76
PAD = 8
BEST = (40, 200, 80)
DEGRADED = (230, 150, 30)
SHORT = {"realism": "R", "identity": "I", "consistency": "C"}


def _label(terms: list[Mapping[str, Any]], potential: float | None) -> str:
    """The potential and the value each weighted signal contributed; * marks a locally scored stand-in."""
    parts = [f"{SHORT.get(t['signal'], t['signal'][:2])} {t['value']:.1f}{'*' if t['stood_in'] else ''}" for t in terms]
    head = f"P {potential:.2f}" if potential is not None else "not scored"
    return head + "  " + "  ".join(parts)


def features_label(info: Mapping[str, Any]) -> str:
    """What the face stage applied (the raw swap's generator_info) and the edge colour difference, short."""
    parts = []
    if "swap_size" in info:
        parts.append(f"swap {info['swap_size']}")
    if "colour_match" in info:
        parts.append("colour " + str(info["colour_match"]).split(":")[0])
    if int(info.get("character_photos", 1)) > 1:
        parts.append(f"{info['character_photos']} photos")
    if info.get("mask_source") == "built from the face":
        parts.append("auto mask")
    if "edge_delta_e" in info:
        parts.append(f"dE {float(info['edge_delta_e']):.1f}")
    return "  ".join(parts)


def contact_sheet(
    ledger: Mapping[str, Any], images: Mapping[str, np.ndarray], crop: tuple[slice, slice] | None = None
) -> np.ndarray:
    """A grid of every candidate (cropped to `crop` if given), labelled id / stage / scores; best framed green.

    `ledger` is the ledger's JSON form (`Ledger.to_dict()`, or the public API's `ledger_json`).
    """
    records = [r for r in ledger["candidates"] if r["candidate_id"] in images]
    best_id = ledger.get("best_id")
    columns = min(7, max(1, len(records)))
    rows = math.ceil(len(records) / columns) if records else 1
    cell_w, cell_h = THUMB + PAD, THUMB + LABEL_HEIGHT + PAD
    sheet = Image.new("RGB", (columns * cell_w + PAD, rows * cell_h + PAD), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    for index, record in enumerate(records):
        cid = record["candidate_id"]
        image = images[cid] if crop is None else images[cid][crop]
        thumb = Image.fromarray(np.ascontiguousarray(image))
        thumb.thumbnail((THUMB, THUMB))
        x = PAD + (index % columns) * cell_w
        y = PAD + (index // columns) * cell_h
        sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        best = cid == best_id
        if best:
            draw.rectangle([x - 4, y - 4, x + THUMB + 3, y + THUMB + 3], outline=BEST, width=4)
        title = f"{cid}  {record['stage']}  seed {record['seed']}" + ("  BEST" if best else "")
        draw.text((x, y + THUMB + 4), title, fill=BEST if best else (235, 235, 235), font=font)
        degraded = any(t["fallback"] or t["stood_in"] for t in record["potential_terms"])
        draw.text(
            (x, y + THUMB + 22),
            _label(record["potential_terms"], record["potential"]),
            fill=DEGRADED if degraded else (200, 200, 200),
            font=font,
        )
        if degraded:
            draw.text((x, y + THUMB + 40), "* scored locally / fallback", fill=DEGRADED, font=font)
        features = features_label(record.get("generator_info") or {})
        if features:
            draw.text((x, y + THUMB + 58), features, fill=(160, 200, 235), font=font)
    return np.asarray(sheet)


def overlay_refinement(image: np.ndarray, given: np.ndarray, refined: np.ndarray) -> np.ndarray:
    """Green where the refined mask is, red where the given mask was dropped."""
    out = image.astype(np.float32)
    dropped = given & ~refined
    out[refined] = out[refined] * 0.6 + np.array([0, 255, 0]) * 0.4
    out[dropped] = out[dropped] * 0.3 + np.array([255, 0, 0]) * 0.7
    return out.astype(np.uint8)
