"""Serve Qwen-Image-Edit over gRPC: `python -m servers.qwen_edit --model-dir DIR [--port N] [--metrics-port N] ...`.

Settings come from flags, QWEN_EDIT_* environment variables or `--config FILE` (see servers/qwen_edit/config.py).
Health answers NOT_SERVING while the model loads, SERVING after; SIGTERM drains in-flight calls, then exits.
"""

from __future__ import annotations

import os
import sys

from inpaint.v1 import qwen_edit_pb2_grpc

from servers.common.logs import configure_logging, fields
from servers.common.server import ModelServer, run_server
from servers.common.settings import ConfigError
from servers.qwen_edit import config as qwen_config
from servers.qwen_edit.adapter import QwenEditModel
from servers.qwen_edit.servicer import SERVICE_NAME, QwenEditServicer


def main(argv: list[str] | None = None) -> int:
    # Never reach a model hub, whatever the caller's environment says.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        config = qwen_config.load(sys.argv[1:] if argv is None else argv)
    except ConfigError as error:
        # A bad setting stops the server here, before it reports SERVING.
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    server = ModelServer("qwen_edit", config)
    model = QwenEditModel(
        config.model_dir,
        device=config.device,
        max_batch=config.max_batch,
        condition_pixels=config.condition_pixels,
        embedding_cache_size=config.embedding_cache_size,
        torch_threads=config.torch_threads,
        pipeline=config.pipeline,
        min_output_side=config.min_output_side,
        max_output_side=config.max_output_side,
        batch_invariant=config.batch_invariant,
        lora_dir=config.lora_dir,
        lora_weight_name=config.lora_weight_name,
        lora_scale=config.lora_scale,
        simulate_step_s=config.simulate_step_s,
    )
    servicer = QwenEditServicer(server, model, config)
    server.add_service(SERVICE_NAME, lambda s: qwen_edit_pb2_grpc.add_QwenEditServiceServicer_to_server(servicer, s))

    def load() -> None:
        model.load()
        server.log.info(
            "model loaded",
            extra=fields(
                model_dir=str(config.model_dir),
                device=model.device,
                stand_in=model.stand_in,
                pipeline=model.kind,
                lora=str(model.lora.path) if model.lora else None,
            ),
        )

    run_server(server, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
