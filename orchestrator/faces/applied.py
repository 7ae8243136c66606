"""What the face features did, recorded for every candidate of the ledger.

The colour difference across the refined mask's edge (mean CIE76 delta E against the init photo in
the feathered ring, see `orchestrator.imaging.colour.edge_delta_e`) is measured on every candidate's
image after the search and written into its `generator_info` as `edge_delta_e`, beside what the
generator recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from orchestrator.imaging.colour import EdgeRing
from orchestrator.search import Ledger


def with_edge_colour(
    ledger: Ledger, images: Mapping[str, np.ndarray], init: np.ndarray, mask: np.ndarray, ring_px: float
) -> Ledger:
    """The ledger with each candidate's `edge_delta_e` against the init photo in the `ring_px` ring inside
    the mask's edge (candidates without an image are left as they are)."""
    records = []
    ring = EdgeRing.of(init, mask, ring_px)  # the init photo's side, once for every candidate
    for record in ledger.candidates:
        image = images.get(record.candidate_id)
        delta_e = ring.delta_e(image) if image is not None else float("nan")
        if np.isfinite(delta_e):
            record = replace(record, generator_info={**record.generator_info, "edge_delta_e": round(delta_e, 3)})
        records.append(record)
    return replace(ledger, candidates=tuple(records))
