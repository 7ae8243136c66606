"""Run the Moondream server: `python -m servers.moondream --adapter transformers-vlm --model-dir DIR --port N`.

Every setting is a flag, a `MOONDREAM_<FIELD>` environment variable or a key in `--config FILE`
(see `servers.moondream.config.MoondreamServerConfig`). Weights load from local directories only.
"""

from __future__ import annotations

import importlib
import os
import sys

from inpaint.v1 import moondream_pb2_grpc

from servers.common.logs import configure_logging
from servers.common.server import ModelServer, run_server
from servers.common.settings import ConfigError, load_settings
from servers.moondream.config import MoondreamServerConfig
from servers.moondream.model import VisionLanguageModel
from servers.moondream.servicer import MoondreamServicer

SERVICE_NAME = "inpaint.v1.MoondreamService"


def build_model(config: MoondreamServerConfig) -> VisionLanguageModel:
    """Load the configured adapter (imports torch and transformers only now, after the offline switches)."""
    if config.torch_threads > 0:
        importlib.import_module("torch").set_num_threads(config.torch_threads)
    if config.adapter == "moondream2":
        from servers.moondream.moondream2 import Moondream2Model

        return Moondream2Model(
            config.model_dir,
            revision=config.revision,
            tokenizer_path=config.tokenizer_path,
            image_cache_size=config.image_cache_size,
            device=config.device,
            dtype=config.dtype,
        )
    from servers.moondream.transformers_vlm import TransformersVisionLanguageModel

    return TransformersVisionLanguageModel(
        config.model_dir, image_cache_size=config.image_cache_size, device=config.device, dtype=config.dtype
    )


def main(argv: list[str] | None = None) -> None:
    try:
        config = load_settings(MoondreamServerConfig, sys.argv[1:] if argv is None else argv)
    except ConfigError as error:
        # A bad setting stops the server here, before it reports SERVING.
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    # Weights come from local directories; a hub download at run time would be a bug, so make it fail.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    configure_logging(config.log_level)
    server = ModelServer("moondream", config)
    servicer = MoondreamServicer(server, config, lambda: build_model(config))
    server.add_service(SERVICE_NAME, lambda s: moondream_pb2_grpc.add_MoondreamServiceServicer_to_server(servicer, s))
    run_server(server, load=servicer.load)


if __name__ == "__main__":
    main()
