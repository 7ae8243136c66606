"""The face stage: find the faces, refine (or build) the mask, keep hair and occluders, swap the identity,
match colour, blend.

    init, mask or None, character photos -> FaceStageResult(refined mask, raw swap, blended image, faces,
                                                            identity, what was applied, timings)

The blended image is the EACPS search's seed-0 candidate (g0) and what the service returns when no
refinement wins; the raw swap (hard-edged paste) is kept for inspection. `applied` records, for the
ledger and the contact sheet, which of the face features ran and how (target choice, photos,
colour match, swap size, the colour difference across the mask's edge).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from orchestrator.errors import DeadlineExceededError
from orchestrator.faces.analysis import DetectionConfig, Face, FaceAnalyzer
from orchestrator.faces.identity import Identity, mean_identity
from orchestrator.faces.options import FaceDefaults, FaceOptions, TargetChoice
from orchestrator.faces.parsing import FaceRegions, face_regions
from orchestrator.faces.selection import (
    choose_character_face,
    choose_target_face,
    face_at_index,
    largest_face,
    most_similar_face,
)
from orchestrator.imaging.blend import BlendConfig, erode, feather_blend
from orchestrator.imaging.colour import edge_delta_e, match_colour
from orchestrator.imaging.masks import (
    MaskRefinement,
    MaskRefinementConfig,
    face_mask_from_landmarks,
    features_mask,
    keep_from_init,
    landmark_hull,
    refine_mask,
)
from orchestrator.search.deadline import Deadline
from servers.common.logs import fields

Scalar = str | int | float | bool
log = logging.getLogger("orchestrator.faces")


@dataclass(frozen=True)
class FaceStageConfig:
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    mask: MaskRefinementConfig = field(default_factory=MaskRefinementConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    faces: FaceDefaults = field(default_factory=FaceDefaults)


@dataclass
class FaceStageResult:
    mask: MaskRefinement
    raw_swap: np.ndarray  # init with the swapped crop pasted back (hard edge), colour matched when asked
    blended: np.ndarray  # the raw swap feathered into init inside the refined mask; candidate g0
    swap_support: np.ndarray  # bool (H, W): where the pasted crop has valid pixels
    target: Face
    character: Face  # the main (first) photo's face, with its own embedding
    timings_s: dict[str, float]
    standin: bool  # True when any model that produced this ran on random stand-in weights
    identity: np.ndarray | None = None  # (512,) unit: the normalised mean of every photo's embedding
    applied: dict[str, Scalar] = field(default_factory=dict)  # what the face features did, for the ledger


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self._last
        self._last = now


def photo_labels(count: int, listed: bool) -> list[str]:
    """How errors name each character photo: the single field, or the list's items."""
    return [f"images.character_images[{i}]" for i in range(count)] if listed else ["character_image"]


def skin_region(
    refined: np.ndarray, target: Face, blend: BlendConfig, regions: FaceRegions | None = None
) -> np.ndarray:
    """The target's skin for colour statistics, inside the refined mask eroded past the feather's edge:
    the parser's skin class when there is a parser, else the mask less the landmarks' eyes, brows and lips."""
    inner = erode(refined, blend.erosion_px + 2)
    if regions is not None:
        parsed: np.ndarray = inner & regions.skin
        return parsed
    if target.landmarks is None:
        return inner
    skin: np.ndarray = inner & ~features_mask(target.landmarks, refined.shape)
    return skin


class FaceStage:
    def __init__(
        self, analyzer: FaceAnalyzer, config: FaceStageConfig = FaceStageConfig(), standin: bool = False
    ) -> None:
        self.analyzer = analyzer
        self.config = config
        self.standin = standin

    def choose_target(
        self,
        init: np.ndarray,
        mask: np.ndarray | None,
        options: FaceOptions,
        reference: np.ndarray | None,
        deadline: Deadline | None,
    ) -> tuple[Face, dict[str, Scalar]]:
        faces = self.analyzer.detect(init, deadline)
        choice = options.target
        if choice is TargetChoice.AUTO:
            choice = TargetChoice.MASK_OVERLAP if mask is not None else TargetChoice.LARGEST
        info: dict[str, Scalar] = {"target_choice": str(choice), "faces_in_init": len(faces)}
        if choice is TargetChoice.MASK_OVERLAP:
            if mask is None:
                raise ValueError("a mask is required to choose the face by mask overlap")
            return choose_target_face(faces, mask), info
        if choice is TargetChoice.LARGEST:
            return largest_face(faces, "init_image"), info
        if choice is TargetChoice.INDEX:
            if options.target_index is None:
                raise ValueError("target_index is required to choose the face by index")
            return face_at_index(faces, options.target_index), info
        if reference is None:
            raise ValueError("a reference photo is required to choose the face by reference")
        wanted = largest_face(self.analyzer.detect(reference, deadline), "images.reference_face")
        self.analyzer.add_embeddings_of([(reference, wanted)] + [(init, f) for f in faces], deadline)
        assert wanted.embedding is not None
        target, similarity = most_similar_face(faces, wanted.embedding, options.min_reference_cosine)
        info["reference_cosine"] = round(similarity, 4)
        return target, info

    def character_identity(
        self, characters: Sequence[np.ndarray], labels: Sequence[str], options: FaceOptions, deadline: Deadline | None
    ) -> tuple[Face, Identity]:
        """Every photo's largest face, embedded in one batched call; their mean identity."""
        faces = [
            choose_character_face(self.analyzer.detect(photo, deadline), label)
            for photo, label in zip(characters, labels)
        ]
        self.analyzer.add_embeddings_of(list(zip(characters, faces)), deadline)
        embeddings = [f.embedding for f in faces if f.embedding is not None]
        return faces[0], mean_identity(embeddings, labels, options.min_identity_cosine)

    def _refine(
        self,
        init: np.ndarray,
        given: np.ndarray,
        target: Face,
        applied: dict[str, Scalar],
        deadline: Deadline | None,
        clock: _Clock,
    ) -> tuple[MaskRefinement, FaceRegions | None]:
        """The landmark hull united with the given mask, hair and occluders kept from the init image."""
        faces = self.config.faces
        regions = None
        if self.config.mask.enabled and self.config.mask.exclude_hair:
            regions = face_regions(self.analyzer, init, target, faces.parser_model, faces.occluder_model, deadline)
        clock.lap("face_regions")
        mask_config = replace(self.config.mask, exclude_hair=False) if regions else self.config.mask
        refinement = refine_mask(init, given, target.landmarks, mask_config)
        if regions is not None:
            found_by = f"face parser {regions.parser}" + (f", occluder {regions.occluder}" if regions.occluder else "")
            assert target.landmarks is not None
            hull = landmark_hull(target.landmarks, init.shape[:2])
            refinement = keep_from_init(refinement, regions.kept(hull), found_by)
            applied["hair_model"] = "face parser"
            applied["occluder"] = regions.occluder or "absent"
        else:
            applied["hair_model"] = "skin colour" if self.config.mask.exclude_hair else "off"
        return refinement, regions

    def run(
        self,
        init: np.ndarray,
        mask: np.ndarray | None,
        character: np.ndarray | Sequence[np.ndarray],
        deadline: Deadline | None = None,
        options: FaceOptions | None = None,
        reference: np.ndarray | None = None,
    ) -> FaceStageResult:
        """`character` is one photo or several (`images.character_images`); `mask` None builds it from the face."""
        options = options or FaceOptions.defaults(self.config.faces)
        listed = not isinstance(character, np.ndarray)
        characters: list[np.ndarray] = [character] if isinstance(character, np.ndarray) else list(character)
        clock = _Clock()
        labels = photo_labels(len(characters), listed)

        def timed_identity() -> tuple[Face, Identity, float]:
            started = time.perf_counter()
            source, identity = self.character_identity(characters, labels, options, deadline)
            return source, identity, time.perf_counter() - started

        # The character's identity does not depend on the target: both are found at once (their detections
        # reach Triton together and can share an execution). A target error is raised first, as before.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="character")
        try:
            finding = pool.submit(timed_identity)
            target, applied = self.choose_target(init, mask, options, reference, deadline)
            self.analyzer.add_landmarks(init, [target], deadline)
            clock.lap("detect_target")
            source, identity, identity_s = finding.result()
        finally:
            pool.shutdown(wait=False)  # a target error goes back at once; the character's calls end by themselves
        applied["character_photos"] = identity.photos
        if identity.agreement:
            applied["character_min_agreement"] = round(min(identity.agreement), 4)
        clock.lap("character_identity")
        # Its own time, most of it beside the target's: the stage's timings overlap here and do not add up.
        clock.timings["character_identity"] = identity_s
        given = mask
        if given is None:
            assert target.landmarks is not None
            given = face_mask_from_landmarks(
                target.landmarks, target.kps, init.shape[:2], self.config.mask.max_extension
            )
        # Hair and occluders: the face parser and occluder when Triton serves them, else the skin-colour model.
        regions: FaceRegions | None = None
        try:
            refinement, regions = self._refine(init, given, target, applied, deadline, clock)
        except DeadlineExceededError:
            raise
        except Exception as error:  # refinement improves the mask; it must never fail the task
            problem = f"{type(error).__name__}: {error}"
            log.warning("mask refinement failed", extra=fields(error=problem))
            refinement = MaskRefinement(
                given, refined=False, reason=f"mask refinement failed ({problem}); given mask kept"
            )
            applied["hair_model"] = "not applied"
        if mask is None:
            refinement = replace(
                refinement, reason=f"no mask given: built from the face's landmarks; {refinement.reason}"
            )
        applied["mask_source"] = "given" if mask is not None else "built from the face"
        clock.lap("refine_mask")
        swap = self.analyzer.swap(init, target, identity.embedding, deadline, size=options.swap_size)
        applied["swap_size"] = options.swap_size
        clock.lap("swap")
        region = refinement.mask & swap.support
        swapped = swap.image
        if options.colour_match:
            skin = skin_region(region, target, self.config.blend, regions)
            matched = match_colour(swapped, init, skin, swap.support)
            swapped = matched.image
            applied["colour_match"] = "applied" if matched.applied else f"skipped: {matched.reason}"
        else:
            applied["colour_match"] = "off"
        clock.lap("colour_match")
        # Feather at the edge of the pasted crop too, where the mask reaches beyond it: no hard seam.
        blended = feather_blend(init, swapped, region, self.config.blend)
        clock.lap("blend")
        ring_px = self.config.blend.erosion_px + self.config.blend.feather_px
        delta_e = edge_delta_e(blended, init, refinement.mask, ring_px)
        if np.isfinite(delta_e):
            applied["edge_delta_e"] = round(delta_e, 3)
        return FaceStageResult(
            mask=refinement,
            raw_swap=swapped,
            blended=blended,
            swap_support=swap.support,
            target=target,
            character=source,
            timings_s=clock.timings,
            standin=self.standin,
            identity=identity.embedding,
            applied=applied,
        )
