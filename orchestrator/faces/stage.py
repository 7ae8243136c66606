"""The face stage: find the faces, refine the mask, swap the identity, blend.

    init, mask, character -> FaceStageResult(refined mask, raw swap, blended image, faces, timings)

The blended image is the EACPS search's seed-0 candidate (g0) and what the service returns when no
refinement wins; the raw swap (hard-edged paste) is kept for inspection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from orchestrator.faces.analysis import DetectionConfig, Face, FaceAnalyzer
from orchestrator.faces.selection import choose_character_face, choose_target_face
from orchestrator.imaging.blend import BlendConfig, feather_blend
from orchestrator.imaging.masks import MaskRefinement, MaskRefinementConfig, refine_mask
from orchestrator.search.deadline import Deadline


@dataclass(frozen=True)
class FaceStageConfig:
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    mask: MaskRefinementConfig = field(default_factory=MaskRefinementConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)


@dataclass
class FaceStageResult:
    mask: MaskRefinement
    raw_swap: np.ndarray  # init with the swapped crop pasted back (hard edge)
    blended: np.ndarray  # the raw swap feathered into init inside the refined mask; candidate g0
    swap_support: np.ndarray  # bool (H, W): where the pasted crop has valid pixels
    target: Face
    character: Face
    timings_s: dict[str, float]
    standin: bool  # True when any model that produced this ran on random stand-in weights


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self._last
        self._last = now


class FaceStage:
    def __init__(
        self, analyzer: FaceAnalyzer, config: FaceStageConfig = FaceStageConfig(), standin: bool = False
    ) -> None:
        self.analyzer = analyzer
        self.config = config
        self.standin = standin

    def run(
        self, init: np.ndarray, mask: np.ndarray, character: np.ndarray, deadline: Deadline | None = None
    ) -> FaceStageResult:
        clock = _Clock()
        target = choose_target_face(self.analyzer.detect(init, deadline), mask)
        self.analyzer.add_landmarks(init, [target], deadline)
        clock.lap("detect_target")
        source = choose_character_face(self.analyzer.detect(character, deadline))
        self.analyzer.add_embeddings(character, [source], deadline)
        clock.lap("character_identity")
        refinement = refine_mask(init, mask, target.landmarks, self.config.mask)
        clock.lap("refine_mask")
        assert source.embedding is not None
        swap = self.analyzer.swap(init, target, source.embedding, deadline)
        clock.lap("swap")
        # Feather at the edge of the pasted crop too, where the mask reaches beyond it: no hard seam.
        blended = feather_blend(init, swap.image, refinement.mask & swap.support, self.config.blend)
        clock.lap("blend")
        return FaceStageResult(
            mask=refinement,
            raw_swap=swap.image,
            blended=blended,
            swap_support=swap.support,
            target=target,
            character=source,
            timings_s=clock.timings,
            standin=self.standin,
        )
