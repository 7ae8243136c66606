"""Seed derivation: every candidate's seed follows from the request seed and the candidate's id alone.

    seed(request_seed, label) = 1 + int.from_bytes(sha256(f"eacps/v1/{request_seed}/{label}")[:8], "big") % (2**31 - 2)

Labels are candidate ids ("g3", "g3.1"), so a candidate keeps its seed whatever order candidates arrive
in, and adding candidates to a stage does not change existing ones. Seeds lie in 1..2**31-2: 0 is
reserved for the raw swap (no diffusion) and 31 bits suit every generator (torch, numpy, JAX). On the
rare collision within one search the label is extended with "#1", "#2", ... until the seed is fresh.
"""

from __future__ import annotations

import hashlib

RAW_SWAP_SEED = 0
_SEED_SPACE = 2**31 - 2
_VERSION = "eacps/v1"


def derive_seed(request_seed: int, label: str) -> int:
    digest = hashlib.sha256(f"{_VERSION}/{request_seed}/{label}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % _SEED_SPACE


class SeedAllocator:
    """Hands out distinct derived seeds within one search."""

    def __init__(self, request_seed: int) -> None:
        self.request_seed = request_seed
        self._used: set[int] = {RAW_SWAP_SEED}

    def seed_for(self, label: str) -> int:
        seed = derive_seed(self.request_seed, label)
        attempt = 0
        while seed in self._used:
            attempt += 1
            seed = derive_seed(self.request_seed, f"{label}#{attempt}")
        self._used.add(seed)
        return seed
