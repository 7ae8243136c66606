"""Stand-ins carry the real contracts; preparation checks files and folds inswapper's emap."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tests.conftest import copy_model_configs
from tools.models.contracts import ALL_MODELS, EMAP_SHAPE, INSWAPPER_128, META_STANDIN
from tools.models.prepare import PreparationError, fold_emap, prepare_repository, read_provenance


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("contract", ALL_MODELS, ids=lambda c: c.triton_name)
def test_standin_has_the_real_contract(standin_weights: Path, contract) -> None:  # type: ignore[no-untyped-def]
    session = _session(standin_weights / contract.source_path)
    assert [i.name for i in session.get_inputs()] == [s.name for s in contract.inputs]
    assert [o.name for o in session.get_outputs()] == [s.name for s in contract.outputs]
    for got, spec in zip(session.get_inputs(), contract.inputs):
        assert got.type == "tensor(float)"
        assert [d if isinstance(d, int) else -1 for d in got.shape] == list(spec.shape)
    feeds = {
        s.name: np.random.default_rng(0).random([d if d > 0 else 64 for d in s.shape], dtype=np.float32)
        for s in contract.inputs
    }
    for out, spec in zip(session.run(None, feeds), contract.outputs):
        assert out.dtype == np.float32
        assert all(want in (-1, got) for got, want in zip(out.shape, spec.shape)), (out.shape, spec.shape)
    model = onnx.load(str(standin_weights / contract.source_path))
    assert {p.key: p.value for p in model.metadata_props}[META_STANDIN] == "true"


def test_standin_inswapper_keeps_an_unused_trailing_emap(standin_weights: Path) -> None:
    model = onnx.load(str(standin_weights / INSWAPPER_128.source_path))
    emap = model.graph.initializer[-1]
    assert tuple(emap.dims) == EMAP_SHAPE
    assert all(emap.name not in node.input for node in model.graph.node)


def _normalize(v: np.ndarray) -> np.ndarray:
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def test_folded_inswapper_takes_the_plain_embedding(standin_weights: Path, tmp_path: Path) -> None:
    original = onnx.load(str(standin_weights / INSWAPPER_128.source_path))
    emap = numpy_helper.to_array(original.graph.initializer[-1])
    folded_path = tmp_path / "folded.onnx"
    onnx.save(fold_emap(original), str(folded_path))
    rng = np.random.default_rng(1)
    target = rng.random((1, 3, 128, 128), dtype=np.float32)
    embedding = (rng.standard_normal((1, 512)) * 20).astype(np.float32)  # ArcFace outputs are not unit length
    latent = _normalize(_normalize(embedding) @ emap).astype(np.float32)
    expected = _session(standin_weights / INSWAPPER_128.source_path).run(None, {"target": target, "source": latent})[0]
    got = _session(folded_path).run(None, {"target": target, "source": embedding})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(PreparationError, match="already folded"):
        fold_emap(onnx.load(str(folded_path)))


def test_prepare_lays_out_the_repository_and_records_provenance(standin_weights: Path, tmp_path: Path) -> None:
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(standin_weights, repository)
    provenance = {p.name: p for p in read_provenance(repository) or []}
    assert set(provenance) == {c.triton_name for c in ALL_MODELS}
    for contract in ALL_MODELS:
        version = repository / contract.triton_name / "1"
        assert (version / "model.onnx").is_file() and (version / "model.py").is_file()
        entry = provenance[contract.triton_name]
        assert entry.standin and not entry.checksum_verified
        assert entry.prepared_sha256 == hashlib.sha256((version / "model.onnx").read_bytes()).hexdigest()
    assert provenance["inswapper_128"].emap_folded and not provenance["det_10g"].emap_folded


def _weights_copy(standin_weights: Path, tmp_path: Path) -> Path:
    weights = tmp_path / "weights"
    shutil.copytree(standin_weights, weights)
    return weights


def test_prepare_rejects_an_unmarked_file_with_the_wrong_checksum(standin_weights: Path, tmp_path: Path) -> None:
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / "buffalo_l" / "w600k_r50.onnx"
    model = onnx.load(str(path))
    del model.metadata_props[:]  # now it claims to be the real file
    onnx.save(model, str(path))
    with pytest.raises(PreparationError, match=r"w600k_r50: .* has SHA-256 .* expected 4c06341c"):
        prepare_repository(weights, copy_model_configs(tmp_path / "repo"))


def test_prepare_rejects_a_file_with_another_contract(standin_weights: Path, tmp_path: Path) -> None:
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / "buffalo_l" / "2d106det.onnx"
    model = onnx.load(str(path))
    model.graph.output[0].name = "landmarks"
    model.graph.node[-1].output[0] = "landmarks"
    onnx.save(model, str(path))
    with pytest.raises(PreparationError, match=r"2d106det .* outputs are \['landmarks'\], expected \['fc1'\]"):
        prepare_repository(weights, copy_model_configs(tmp_path / "repo"))


def test_prepare_names_a_missing_file_and_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(PreparationError, match=r"det_10g: .*det_10g.onnx is missing; run `make models`"):
        prepare_repository(tmp_path / "nothing", copy_model_configs(tmp_path / "repo"))


def test_prepare_rejects_a_corrupt_file(standin_weights: Path, tmp_path: Path) -> None:
    weights = _weights_copy(standin_weights, tmp_path)
    (weights / "inswapper_128.onnx").write_bytes(b"\x00not an onnx file" * 10)
    with pytest.raises(PreparationError, match=r"inswapper_128: .* not a readable ONNX file"):
        prepare_repository(weights, copy_model_configs(tmp_path / "repo"))


def test_a_landmark_export_that_normalises_itself_gets_the_common_input_contract(
    standin_weights: Path, tmp_path: Path
) -> None:
    """The MXNet 2d106det starts with `bn_data` and takes raw pixels; prepared, it takes (x-127.5)/128."""
    from tools.models.contracts import LANDMARK_2D106
    from tools.models.prepare import fold_input_normalisation, normalises_itself

    model = onnx.load(str(standin_weights / LANDMARK_2D106.source_path))
    assert not normalises_itself(model, LANDMARK_2D106)
    model.graph.node[0].name = "bn_data"  # what insightface looks for
    assert normalises_itself(model, LANDMARK_2D106)
    raw_path, folded_path = tmp_path / "raw.onnx", tmp_path / "folded.onnx"
    onnx.save(model, str(raw_path))
    onnx.save(fold_input_normalisation(model, LANDMARK_2D106), str(folded_path))
    pixels = np.random.default_rng(3).uniform(0, 255, (2, 3, 192, 192)).astype(np.float32)
    expected = _session(raw_path).run(None, {"data": pixels})[0]
    got = _session(folded_path).run(None, {"data": (pixels - 127.5) / 128.0})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_prepare_records_whether_it_folded_the_input_normalisation(standin_weights: Path, tmp_path: Path) -> None:
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / "buffalo_l" / "2d106det.onnx"
    model = onnx.load(str(path))
    model.graph.node[0].name = "bn_data"
    onnx.save(model, str(path))
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(weights, repository)
    provenance = {p.name: p for p in read_provenance(repository) or []}
    assert provenance["2d106det"].input_normalisation_folded
    assert not provenance["w600k_r50"].input_normalisation_folded
