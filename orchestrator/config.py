"""The orchestrator's settings: each component's own settings, nested; and the per-request overrides.

    settings = load_settings(OrchestratorConfig, sys.argv[1:])   # stops with ConfigError naming the setting

Each part keeps its defaults and checks next to its code (`SearchConfig` in `orchestrator/search`,
`RefinementConfig` beside the Qwen-Edit generator, `GeminiConfig` beside the Gemini scorer, ...); this
class only nests them. Read, later winning: defaults, a TOML/JSON file (`--config` or
`INPAINT_CONFIG`), the environment (`INPAINT_PORT`, nested `INPAINT_SEARCH__K_GLOBAL`), then flags
(`--port`, nested `--search.k-global`). The Gemini key is not a setting: it comes from
`GEMINI_API_KEY`, the key file `gemini.key_file`, or the CLI's `--gemini_api_key`, and is never logged.

What one request may change is declared once, in `OVERRIDES`: the public API's `SearchSettings`
fields, their bounds, the setting each one replaces, and the CLI's flags all come from that table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

from orchestrator.channels import ServerAddress
from orchestrator.errors import InvalidInputError
from orchestrator.faces.analysis import DetectionConfig
from orchestrator.faces.options import FaceDefaults
from orchestrator.faces.stage import FaceStageConfig
from orchestrator.faces.triton_client import TritonConfig
from orchestrator.imaging.blend import BlendConfig
from orchestrator.imaging.decode import DEFAULT_MIN_SIDE
from orchestrator.imaging.masks import MaskRefinementConfig
from orchestrator.operations.config import OperationsConfig
from orchestrator.refine.qwen_client import QwenEditClientConfig
from orchestrator.refine.qwen_generator import RefinementConfig
from orchestrator.scoring.gemini import GeminiConfig
from orchestrator.search import SearchConfig
from orchestrator.search.signals import CONSISTENCY, IDENTITY, REALISM
from orchestrator.tracing import TracingConfig
from servers.common.auth import AuthConfig
from servers.common.images import DEFAULT_MAX_PIXELS
from servers.common.settings import Port, ServerSettings, section

# The model servers' own limits that a request's settings must respect.
QWEN_EDIT_MAX_STEPS = 50  # servers/qwen_edit/config.py, `max_steps`

# Each part's own settings class, as a validated section (a subclass: instances are still the part's class).
if TYPE_CHECKING:
    Triton = TritonConfig
    QwenEdit = QwenEditClientConfig
    Moondream = ServerAddress
    Gemini = GeminiConfig
    Search = SearchConfig
    Refinement = RefinementConfig
    Detection = DetectionConfig
    Faces = FaceDefaults
    Tracing = TracingConfig
    Mask = MaskRefinementConfig
    Blend = BlendConfig
    Operations = OperationsConfig
    Auth = AuthConfig
else:
    Triton = section(TritonConfig)
    QwenEdit = section(QwenEditClientConfig)
    Moondream = section(ServerAddress)
    Gemini = section(GeminiConfig)
    Search = section(SearchConfig)
    Refinement = section(RefinementConfig)
    Detection = section(DetectionConfig)
    Faces = section(FaceDefaults)
    Tracing = section(TracingConfig)
    Mask = section(MaskRefinementConfig)
    Blend = section(BlendConfig)
    Operations = section(OperationsConfig)
    Auth = section(AuthConfig)


class OrchestratorConfig(ServerSettings):
    """Every setting of the orchestrator (the service and the CLI)."""

    model_config = SettingsConfigDict(env_prefix="INPAINT_")

    port: Port = 50050
    metrics_port: Port = 9460
    # A task's stream lasts as long as its search (up to default_deadline_s): a connection past its age keeps
    # its calls this long before they are cut.
    max_connection_age_grace_s: Annotated[float, Field(ge=0)] = 1900.0
    # The model servers and Gemini.
    triton: Triton = Triton()
    qwen_edit: QwenEdit = QwenEdit()
    moondream: Moondream = Moondream(target="127.0.0.1:50052", timeout_s=120.0)
    gemini: Gemini = Gemini()
    # How long the service waits at start-up for the other model servers to answer a warm-up.
    probe_wait_s: Annotated[float, Field(ge=0)] = 120.0
    # How often readiness checks Triton's face models (health NOT_SERVING while they are away).
    readiness_interval_s: Annotated[float, Field(gt=0)] = 5.0
    # The search and its parts.
    search: Search = Search()
    refinement: Refinement = Refinement()
    detection: Detection = Detection()
    # The face features' defaults and limits (several character photos, face choice, colour match, pixel boost).
    faces: Faces = Faces()
    mask: Mask = Mask()
    blend: Blend = Blend()
    # OpenTelemetry spans (task, stages, candidates, model calls), exported over OTLP when an endpoint is set.
    tracing: Tracing = Tracing()
    # Requests.
    max_image_pixels: Annotated[int, Field(ge=1)] = DEFAULT_MAX_PIXELS
    # Images with a side shorter than this cannot hold a face: refused as INVALID_ARGUMENT naming the image.
    min_image_side: Annotated[int, Field(ge=1)] = DEFAULT_MIN_SIDE
    task_store: Path = Path("tasks")
    worker_threads: Annotated[int, Field(ge=1)] = 32  # threads for blocking work (Triton, Moondream, images)
    default_deadline_s: Annotated[float, Field(gt=0)] = 1800.0  # when the caller sets none
    # The search answers this long before the caller's deadline (at most), to blend, encode and reply.
    deadline_margin_s: Annotated[float, Field(ge=0)] = 30.0
    # Tasks as durable operations: the database, the blob store, the queue, replicas, retention.
    operations: Operations = Operations()
    # Who may call the public services (API keys; off by default, on in the cluster overlay).
    auth: Auth = Auth()

    def face_stage(self) -> FaceStageConfig:
        return FaceStageConfig(detection=self.detection, mask=self.mask, blend=self.blend, faces=self.faces)


@dataclass(frozen=True)
class Override:
    """A setting one request may change: the public API's field, its bounds, and what it replaces.

    Attributes:
        name: the field of `inpaint.v1.SearchSettings` (and the CLI flag `--<name>`).
        path: where it goes in `OrchestratorConfig` (a setting, or a key of a mapping setting).
        low, high: inclusive bounds.
        kind: int or float.
        help: one line for the CLI.
    """

    name: str
    path: tuple[str, ...]
    low: float
    high: float
    kind: type[int] | type[float]
    help: str


OVERRIDES: tuple[Override, ...] = (
    Override("k_global", ("search", "k_global"), 1, 32, int, "global candidates, the raw swap included"),
    Override("m_global", ("search", "m_global"), 0, 8, int, "global candidates kept as parents"),
    Override("k_local", ("search", "k_local"), 0, 16, int, "children refined near each parent"),
    Override("weight_consistency", ("search", "weights", CONSISTENCY), 0.0, 100.0, float, "potential weight"),
    Override("weight_realism", ("search", "weights", REALISM), 0.0, 100.0, float, "potential weight"),
    Override("weight_identity", ("search", "weights", IDENTITY), 0.0, 100.0, float, "potential weight"),
    Override(
        "num_inference_steps", ("refinement", "num_inference_steps"), 1, QWEN_EDIT_MAX_STEPS, int, "denoising steps"
    ),
    Override("true_cfg_scale", ("refinement", "true_cfg_scale"), 1.0, 20.0, float, "true classifier-free guidance"),
    Override("feather_px", ("blend", "feather_px"), 0.5, 256.0, float, "feather width at the mask's edge"),
    Override("erosion_px", ("blend", "erosion_px"), 0, 64, int, "mask erosion before feathering"),
)
OVERRIDES_BY_NAME: Mapping[str, Override] = {o.name: o for o in OVERRIDES}


def _replace_at(value: Any, path: tuple[str, ...], new: object) -> Any:
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        return {**value, head: new if not rest else _replace_at(value[head], rest, new)}
    current = getattr(value, head)
    updated = new if not rest else _replace_at(current, rest, new)
    if isinstance(value, ServerSettings):
        return value.model_copy(update={head: updated})
    return dataclasses.replace(value, **{head: updated})


@dataclass(frozen=True)
class RequestSettings:
    """One request's overrides (validated against `OVERRIDES`) and its seed."""

    values: Mapping[str, float] = dataclasses.field(default_factory=dict)
    seed: int = 0

    @classmethod
    def checked(cls, values: Mapping[str, float | None], seed: int = 0) -> RequestSettings:
        """Overrides from (name, value) pairs, None meaning unset; InvalidInputError names a bad one."""
        kept: dict[str, float] = {}
        for name, value in values.items():
            if value is None:
                continue
            override = OVERRIDES_BY_NAME.get(name)
            if override is None:
                raise InvalidInputError(f"settings.{name}", "is not a setting a request may change")
            if not math.isfinite(value) or not override.low <= value <= override.high:
                raise InvalidInputError(
                    f"settings.{name}", f"must be within {override.low:g}..{override.high:g}, got {value:g}"
                )
            kept[name] = override.kind(value)
        if "m_global" in kept and kept["m_global"] > kept.get("k_global", math.inf):
            raise InvalidInputError("settings.m_global", f"must be at most k_global, got {kept['m_global']:g}")
        return cls(kept, seed)

    def apply(self, config: OrchestratorConfig) -> OrchestratorConfig:
        """The configuration with this request's overrides in place (each part re-validates itself)."""
        for name, value in self.values.items():
            try:
                config = _replace_at(config, OVERRIDES_BY_NAME[name].path, value)
            except ValidationError as error:
                problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors(include_url=False))
                raise InvalidInputError(f"settings.{name}", problems) from None
            except ValueError as error:
                raise InvalidInputError(f"settings.{name}", str(error)) from None
        return config
