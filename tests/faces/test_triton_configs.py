"""Both Triton configurations of every model parse as ModelConfig and match the real contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from servers.triton.contracts import ALL_MODELS, ModelContract

REPOSITORY = Path(__file__).resolve().parents[2] / "triton_models"


def _parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _expected_dims(shape: tuple[int, ...], batched: bool) -> list[int]:
    return list(shape[1:]) if batched else list(shape)


def _check_io(config: model_config_pb2.ModelConfig, contract: ModelContract) -> None:
    assert config.name == contract.triton_name
    assert (config.max_batch_size > 0) == contract.batchable
    for tensors, specs in ((config.input, contract.inputs), (config.output, contract.outputs)):
        assert [t.name for t in tensors] == [s.name for s in specs]
        for tensor, spec in zip(tensors, specs):
            assert tensor.data_type == (
                model_config_pb2.TYPE_UINT8 if spec.dtype == np.uint8 else model_config_pb2.TYPE_FP32
            )
            assert list(tensor.dims) == _expected_dims(spec.shape, contract.batchable)
    assert config.HasField("dynamic_batching") == contract.batchable


@pytest.mark.parametrize("contract", ALL_MODELS, ids=lambda c: c.triton_name)
def test_production_config_runs_onnxruntime_on_the_gpu(contract: ModelContract) -> None:
    config = _parse(REPOSITORY / contract.triton_name / "config.pbtxt")
    _check_io(config, contract)
    assert config.platform == "onnxruntime_onnx"
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]


@pytest.mark.parametrize("contract", ALL_MODELS, ids=lambda c: c.triton_name)
def test_cpu_config_runs_the_same_file_in_the_python_backend(contract: ModelContract) -> None:
    config = _parse(REPOSITORY / contract.triton_name / "configs" / "cpu.pbtxt")
    _check_io(config, contract)
    assert config.backend == "python" and not config.platform
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]


def test_the_two_configs_agree_on_inputs_outputs_and_batching() -> None:
    for contract in ALL_MODELS:
        gpu = _parse(REPOSITORY / contract.triton_name / "config.pbtxt")
        cpu = _parse(REPOSITORY / contract.triton_name / "configs" / "cpu.pbtxt")
        assert gpu.input == cpu.input and gpu.output == cpu.output
        assert gpu.max_batch_size == cpu.max_batch_size
