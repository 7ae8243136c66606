"""What a request may choose in the face stage, and the server's defaults for it.

`FaceDefaults` is the service's configuration (limits and default thresholds); `FaceOptions` is one
request's choices with those defaults filled in, built once by `orchestrator.requests` and read by
`orchestrator.faces.stage`. Plain frozen data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from servers.triton.contracts import FACE_OCCLUDER, FACE_PARSER

SWAP_SIZES = (128, 256, 512)


class TargetChoice(StrEnum):
    """Which face of the init image is replaced (the public API's `FaceTarget`)."""

    AUTO = "auto"  # mask overlap when a mask is given, else the largest face
    MASK_OVERLAP = "mask_overlap"
    INDEX = "index"  # faces numbered from 0 left to right
    LARGEST = "largest"
    REFERENCE = "reference"  # most similar to a reference photo's face


@dataclass(frozen=True)
class FaceDefaults:
    """The server's defaults and limits for the face features."""

    # How many photos of the identity one request may carry.
    max_character_images: int = 8
    # A photo whose ArcFace cosine to the mean of the others is below this is another person.
    # ArcFace (w600k_r50) puts the same person at about 0.4-0.8 and different people at about -0.1-0.2.
    min_identity_cosine: float = 0.2
    # The least cosine between a reference photo's face and a face of the init image that is a match.
    min_reference_cosine: float = 0.3
    colour_match: bool = True
    swap_size: int = 128
    # FaceFusion's face parser and occluder in Triton; where Triton does not serve the parser, the skin-colour
    # hair model stands in (and the ledger and the mask's reason say which ran).
    parser_model: str = FACE_PARSER.triton_name
    occluder_model: str = FACE_OCCLUDER.triton_name

    def __post_init__(self) -> None:
        if self.max_character_images < 1:
            raise ValueError(f"max_character_images must be >= 1, got {self.max_character_images}")
        if self.swap_size not in SWAP_SIZES:
            raise ValueError(f"swap_size must be one of {SWAP_SIZES}, got {self.swap_size}")


@dataclass(frozen=True)
class FaceOptions:
    """One request's face-stage choices, defaults filled in."""

    target: TargetChoice = TargetChoice.AUTO
    target_index: int | None = None
    min_identity_cosine: float = FaceDefaults.min_identity_cosine
    min_reference_cosine: float = FaceDefaults.min_reference_cosine
    colour_match: bool = FaceDefaults.colour_match
    swap_size: int = FaceDefaults.swap_size

    @classmethod
    def defaults(cls, defaults: FaceDefaults) -> FaceOptions:
        return cls(
            min_identity_cosine=defaults.min_identity_cosine,
            min_reference_cosine=defaults.min_reference_cosine,
            colour_match=defaults.colour_match,
            swap_size=defaults.swap_size,
        )
