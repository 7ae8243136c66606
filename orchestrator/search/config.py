"""The EACPS search's configuration: one typed object, its defaults written once, validated on construction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.search.signals import (
    CONSISTENCY,
    CONSISTENCY_LOCAL,
    IDENTITY,
    IDENTITY_LOCAL,
    REALISM,
    REALISM_LOCAL,
)


class SearchConfigError(ValueError):
    """A search setting is unusable; the message names the field."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        self.problem = problem
        super().__init__(f"{field_name}: {problem}")


class LocalMode(StrEnum):
    """How a local child is made "near" its parent (docs/architecture.md, "The search")."""

    # The parent's initial latents mixed with fresh noise at cosine `noise_cosine` (pipeline `latents=`).
    NOISE_NEIGHBOURHOOD = "noise_neighbourhood"
    # The parent's image re-noised to `renoise_strength` and denoised again.
    RENOISE = "renoise"


def _default_weights() -> dict[str, float]:
    return {CONSISTENCY: 1.0, REALISM: 4.0, IDENTITY: 1.5}


def _default_stand_ins() -> dict[str, tuple[str, ...]]:
    # Local metrics measure the same property as the model scorer they stand in for. Realism's local
    # proxy is narrower than Gemini's judgement: it catches the plastic, over-smoothed or noisy faces
    # (a texture that does not match the photo's), not a CGI look.
    return {IDENTITY: (IDENTITY_LOCAL,), CONSISTENCY: (CONSISTENCY_LOCAL,), REALISM: (REALISM_LOCAL,)}


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of one search. Per-request overrides build a new one with `dataclasses.replace`.

    Attributes:
        k_global: candidates in the global stage, the raw swap included when one is given.
        m_global: global candidates kept as parents for the local stage.
        k_local: children generated near each parent.
        weights: potential = sum(weight * score) over these signals (scores are on 0-10).
        stand_ins: for each weighted signal, the signals that stand in (in order) when it is missing or
            fell back; a signal with no usable stand-in contributes `fallback_score`.
        fallback_score: the value of a signal that neither it nor a stand-in could provide.
        local_mode: how children of a diffusion parent are made; a raw-swap parent (seed 0, it has no
            initial latents) is always refined by re-noising.
        noise_cosine: cosine between a child's initial latents and its parent's (noise neighbourhood).
        renoise_strength: the fraction of the schedule re-run on the parent's image (re-noising).
        sequential: the baseline schedule, for comparison: one candidate at a time, each scored before
            the next is asked for, the scorers one after the other (default: a stage's candidates in one
            call, each scored as it arrives, the scorers concurrently).
        local_cost_factor: the local stage's cost per candidate relative to the global stage's measured
            cost per candidate, for the deadline estimate (1.0 is conservative: re-noising at strength s
            runs only about s of the steps, but scoring costs the same).
    """

    k_global: int = 8
    m_global: int = 3
    k_local: int = 4
    weights: Mapping[str, float] = field(default_factory=_default_weights)
    stand_ins: Mapping[str, tuple[str, ...]] = field(default_factory=_default_stand_ins)
    fallback_score: float = 5.0
    local_mode: LocalMode = LocalMode.NOISE_NEIGHBOURHOOD
    noise_cosine: float = 0.95
    renoise_strength: float = 0.45
    local_cost_factor: float = 1.0
    sequential: bool = False

    def __post_init__(self) -> None:
        if self.k_global < 1:
            raise SearchConfigError("k_global", f"must be at least 1, got {self.k_global}")
        if not 0 <= self.m_global <= self.k_global:
            raise SearchConfigError("m_global", f"must be within 0..k_global ({self.k_global}), got {self.m_global}")
        if self.k_local < 0:
            raise SearchConfigError("k_local", f"must be at least 0, got {self.k_local}")
        if not self.weights:
            raise SearchConfigError("weights", "needs at least one signal")
        for signal, weight in self.weights.items():
            if not math.isfinite(weight) or weight < 0:
                raise SearchConfigError(f"weights[{signal}]", f"must be a finite number >= 0, got {weight}")
        if not 0.0 <= self.fallback_score <= 10.0:
            raise SearchConfigError("fallback_score", f"must be within 0..10, got {self.fallback_score}")
        if not 0.0 < self.noise_cosine < 1.0:
            raise SearchConfigError("noise_cosine", f"must be within (0, 1), got {self.noise_cosine}")
        if not 0.0 < self.renoise_strength <= 1.0:
            raise SearchConfigError("renoise_strength", f"must be within (0, 1], got {self.renoise_strength}")
        if not self.local_cost_factor > 0:
            raise SearchConfigError("local_cost_factor", f"must be > 0, got {self.local_cost_factor}")
        # A plain string from a flag or a file becomes the enum; anything else is named as the problem.
        try:
            object.__setattr__(self, "local_mode", LocalMode(self.local_mode))
        except ValueError:
            choices = ", ".join(m.value for m in LocalMode)
            raise SearchConfigError("local_mode", f"must be one of {choices}, got {self.local_mode!r}") from None

    @property
    def total_candidates(self) -> int:
        """Candidates a full search scores: k_global + m_global * k_local: 20 with the defaults (8, then 3 x 4)."""
        return self.k_global + self.m_global * self.k_local

    def to_dict(self) -> dict[str, Any]:
        return {
            "k_global": self.k_global,
            "m_global": self.m_global,
            "k_local": self.k_local,
            "weights": dict(self.weights),
            "stand_ins": {signal: list(alternatives) for signal, alternatives in self.stand_ins.items()},
            "fallback_score": self.fallback_score,
            "local_mode": self.local_mode.value,
            "noise_cosine": self.noise_cosine,
            "renoise_strength": self.renoise_strength,
            "local_cost_factor": self.local_cost_factor,
            "sequential": self.sequential,
        }
