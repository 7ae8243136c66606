"""Start a Moondream server process: the Moondream flags and environment over `stack.process`.

Used by the tests and the benchmark, which run in the main environment while the server runs in its
own (`.venv-moondream`). Imports no model library.

    with MoondreamServerProcess(MoondreamProcessConfig(model_dir=d)) as p:
        stub = MoondreamServiceStub(p.channel())
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stack.process import REPO_ROOT, ModelServerProcess, ServerProcessConfig, ServerStartError, free_port

DEFAULT_PYTHON = Path(os.environ.get("INPAINT_MOONDREAM_PYTHON", REPO_ROOT / ".venv-moondream" / "bin" / "python"))

# What the common launcher raises when the server exits or does not become SERVING in time.
MoondreamStartError = ServerStartError


@dataclass
class MoondreamProcessConfig:
    """One server process: which model, which ports, which extra flags (`--max-queue 2`, ...)."""

    model_dir: Path
    adapter: str = "transformers-vlm"
    python: Path = DEFAULT_PYTHON
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    log_file: Path | None = None
    ready_timeout_s: float = 120.0
    # Added to the inherited environment of the process.
    env: dict[str, str] = field(default_factory=dict)

    def server_config(self) -> ServerProcessConfig:
        return ServerProcessConfig(
            module="servers.moondream",
            python=self.python,
            args=["--adapter", self.adapter, "--model-dir", str(self.model_dir), *self.extra_args],
            host=self.host,
            port=self.port,
            metrics_port=self.metrics_port,
            log_file=self.log_file,
            ready_timeout_s=self.ready_timeout_s,
            env=self.env,
        )


class MoondreamServerProcess(ModelServerProcess):
    def __init__(self, config: MoondreamProcessConfig) -> None:
        super().__init__(config.server_config())
        self.moondream_config = config
