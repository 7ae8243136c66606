"""Names of the score signals, written once so scorers, weights and stand-ins agree on spelling."""

from __future__ import annotations

from typing import Final

# Model scorers (docs/architecture.md, "Scoring").
REALISM: Final = "realism"  # Gemini
IDENTITY: Final = "identity"  # Moondream, cross-validated side by side
CONSISTENCY: Final = "consistency"  # Moondream

# Local metrics computed on every candidate; they stand in when a model scorer is missing.
IDENTITY_LOCAL: Final = "identity_local"  # ArcFace cosine against the character, mapped to 0-10
CONSISTENCY_LOCAL: Final = "consistency_local"  # colour and gradient continuity across the mask edge, 0-10
REALISM_LOCAL: Final = "realism_local"  # texture match: sharpness and grain inside the mask against around it
