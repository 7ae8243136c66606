"""What the Triton model repository holds: real weights or stand-ins, their checksums, what preparation changed.

`tools.models.prepare` writes `<repository>/provenance.json`; the runtime (the Triton launcher, the
orchestrator) reads it to say whether its answers come from real models. The stand-in mark that the
stand-in generator writes into each ONNX file's metadata is defined here, once, and read only through
`is_standin`. Nothing here imports onnx.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

PROVENANCE_FILE = "provenance.json"

# The metadata_props entry that marks an ONNX file as a random-weight stand-in.
STANDIN_METADATA = {"inpaint.standin": "true"}


class ProvenanceError(ValueError):
    """provenance.json exists but cannot be read as this project's record."""


def is_standin(metadata: Mapping[str, str]) -> bool:
    """Whether an ONNX file's metadata_props (as a mapping) carry the stand-in mark."""
    return all(metadata.get(key) == value for key, value in STANDIN_METADATA.items())


@dataclass(frozen=True)
class PreparedModel:
    """One model as preparation left it in the repository."""

    name: str
    source: str
    source_sha256: str
    prepared_sha256: str
    standin: bool
    checksum_verified: bool
    emap_folded: bool
    input_normalisation_folded: bool = False
    takes_pixels: bool = False  # served with uint8 pixel input, the normalisation folded in (det_10g)


def write_provenance(repository: Path, prepared: Sequence[PreparedModel]) -> Path:
    path = repository / PROVENANCE_FILE
    path.write_text(json.dumps([asdict(p) for p in prepared], indent=2) + "\n")
    return path


def read_provenance(repository: Path) -> list[PreparedModel] | None:
    """The repository's record, or None when it has not been prepared."""
    path = repository / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProvenanceError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(entries, list):
        raise ProvenanceError(f"{path}: expected a list of models, found {type(entries).__name__}")
    known = {f.name for f in fields(PreparedModel)}
    models = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ProvenanceError(f"{path}: entry {index} is not an object")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ProvenanceError(f"{path}: entry {index} has unknown fields {unknown}")
        try:
            models.append(PreparedModel(**entry))
        except TypeError as exc:
            raise ProvenanceError(f"{path}: entry {index}: {exc}") from exc
    return models
