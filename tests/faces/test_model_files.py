"""Stand-ins carry the real contracts; preparation checks files and folds inswapper's emap."""

from __future__ import annotations

import ast
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from bench.prepare_memory import measure_on_standins
from servers.triton.contracts import (
    ALL_MODELS,
    DET_10G,
    EMAP_SHAPE,
    FACE_OCCLUDER,
    FACE_PARSER,
    INSWAPPER_128,
    LANDMARK_2D106,
)
from servers.triton.provenance import is_standin, read_provenance
from tests.conftest import copy_model_configs
from tools.models import onnx_stream
from tools.models.prepare import (
    PreparationError,
    batch_by_scan,
    fold_argmax,
    fold_emap,
    fold_input_normalisation,
    main,
    normalises_itself,
    prepare_repository,
    take_pixels,
)
from tools.models.standins import LANDMARK_IR_VERSION, LANDMARK_OPSET


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("contract", ALL_MODELS, ids=lambda c: c.triton_name)
def test_standin_has_the_real_contract(standin_weights: Path, contract) -> None:  # type: ignore[no-untyped-def]
    session = _session(standin_weights / contract.source_path)
    assert [i.name for i in session.get_inputs()] == [s.name for s in contract.inputs]
    assert [o.name for o in session.get_outputs()] == [s.name for s in contract.source_outputs()]
    for got, spec in zip(session.get_inputs(), contract.source_inputs()):
        assert got.type == "tensor(float)"
        assert [d if isinstance(d, int) else -1 for d in got.shape] == list(contract.source_shape(spec))
    feeds = {
        s.name: np.random.default_rng(0).random(
            [d if d > 0 else 64 for d in contract.source_shape(s)], dtype=np.float32
        )
        for s in contract.inputs
    }
    for out, spec in zip(session.run(None, feeds), contract.source_outputs()):
        assert out.dtype == np.float32
        shape = spec.shape
        assert all(want in (-1, got) for got, want in zip(out.shape, shape)), (out.shape, shape)
    model = onnx.load(str(standin_weights / contract.source_path))
    assert is_standin({p.key: p.value for p in model.metadata_props})


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
    with pytest.raises(PreparationError, match=r"w600k_r50: .* is not the published file \(SHA-256 4c06341c"):
        prepare_repository(weights, copy_model_configs(tmp_path / "repo"))


def test_facefusion_files_are_checked_by_size_and_crc32(standin_weights: Path, tmp_path: Path) -> None:
    """FaceFusion publishes a CRC32 per file, not a SHA-256: an unmarked file must match that."""
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / FACE_PARSER.source_path
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(PreparationError, match=r"bisenet_resnet_34: .* \(93632546 bytes with CRC32 35d17a50\)"):
        prepare_repository(weights, copy_model_configs(tmp_path / "repo"))


def test_a_mask_model_output_is_served_under_the_contract_name(standin_weights: Path, tmp_path: Path) -> None:
    """The real files' output names are not published; preparation serves the single output as `output`."""
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / FACE_OCCLUDER.source_path
    model = onnx.load(str(path))
    model.graph.output[0].name = "sigmoid_out"
    model.graph.node[-1].output[0] = "sigmoid_out"
    onnx.save(model, str(path))
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(weights, repository)
    prepared = onnx.load(str(repository / "xseg_1" / "1" / "model.onnx"))
    assert [o.name for o in prepared.graph.output] == ["output"]
    assert {p.key: p.value for p in prepared.metadata_props}["inpaint.output_renamed_from"] == "sigmoid_out"
    session = _session(repository / "xseg_1" / "1" / "model.onnx")
    out = session.run(None, {"input": np.zeros((1, 256, 256, 3), np.float32)})[0]
    assert out.shape == (1, 256, 256, 1)


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


def test_the_landmark_standin_is_an_old_self_normalising_export_like_the_real_file(standin_weights: Path) -> None:
    model = onnx.load(str(standin_weights / LANDMARK_2D106.source_path))
    assert (model.ir_version, model.opset_import[0].version) == (LANDMARK_IR_VERSION, LANDMARK_OPSET) == (3, 9)
    assert {i.name for i in model.graph.initializer} <= {v.name for v in model.graph.input}  # IR 3's rule
    assert model.graph.node[0].name == "bn_data"
    assert normalises_itself(model, LANDMARK_2D106)


def test_a_landmark_export_that_normalises_itself_gets_the_common_input_contract(
    standin_weights: Path, tmp_path: Path
) -> None:
    """The MXNet 2d106det takes raw pixels; folded, it takes (x-127.5)/128 and still passes onnx's checker."""
    raw_path, folded_path = standin_weights / LANDMARK_2D106.source_path, tmp_path / "folded.onnx"
    folded = fold_input_normalisation(onnx.load(str(raw_path)), LANDMARK_2D106)
    assert folded.ir_version == 3
    onnx.checker.check_model(folded)  # IR 3: a folded-in initializer not listed as an input would fail here
    onnx.save(folded, str(folded_path))
    assert [i.name for i in _session(folded_path).get_inputs()] == ["data"]
    pixels = np.random.default_rng(3).integers(0, 256, (2, 3, 192, 192)).astype(np.float32)
    expected = _session(raw_path).run(None, {"data": pixels})[0]
    got = _session(folded_path).run(None, {"data": (pixels - 127.5) / 128.0})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_prepare_records_whether_it_folded_the_input_normalisation(standin_weights: Path, tmp_path: Path) -> None:
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(standin_weights, repository)
    provenance = {p.name: p for p in read_provenance(repository) or []}
    assert provenance["2d106det"].input_normalisation_folded
    assert not provenance["w600k_r50"].input_normalisation_folded
    assert [p.name for p in provenance.values() if p.takes_pixels] == ["det_10g"]
    prepared = onnx.load(str(repository / "2d106det" / "1" / "model.onnx"))
    assert prepared.ir_version == 3  # kept as the source had it; the folded graph passed the checker
    onnx.checker.check_model(prepared)


def test_a_prepared_file_equals_the_source_with_the_changes_preparation_made(
    standin_weights: Path, tmp_path: Path
) -> None:
    """Streaming the weights through leaves every initializer's bytes as they were."""
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(standin_weights, repository)
    source = onnx.load(str(standin_weights / INSWAPPER_128.source_path))
    prepared = onnx.load(str(repository / "inswapper_128" / "1" / "model.onnx"))
    assert [numpy_helper.to_array(t).tobytes() for t in prepared.graph.initializer] == [
        numpy_helper.to_array(t).tobytes() for t in source.graph.initializer
    ]
    assert [o.name for o in prepared.graph.output] == [o.name for o in source.graph.output]
    expected = batch_by_scan(fold_emap(source), INSWAPPER_128)
    assert prepared.graph.node == expected.graph.node
    assert prepared.graph.output == expected.graph.output


def test_the_prepared_inswapper_takes_a_batch_and_swaps_each_item_as_the_original_does(
    standin_weights: Path, tmp_path: Path
) -> None:
    """The file fixes its batch to 1 (the stand-in, like a fixed-batch export, reshapes with that 1);
    the prepared model runs a batch of tiles in one call, each exactly as the original graph would."""
    source_path = standin_weights / INSWAPPER_128.source_path
    assert _session(source_path).get_inputs()[0].shape[0] == 1
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(standin_weights, repository)
    prepared = _session(repository / "inswapper_128" / "1" / "model.onnx")
    assert [i.shape[0] for i in prepared.get_inputs()] == ["N", "N"]
    folded_path = tmp_path / "folded.onnx"
    onnx.save(fold_emap(onnx.load(str(source_path))), str(folded_path))
    original = _session(folded_path)
    rng = np.random.default_rng(2)
    target = rng.random((16, 3, 128, 128), dtype=np.float32)
    embedding = (rng.standard_normal((16, 512)) * 20).astype(np.float32)
    batched = prepared.run(None, {"target": target, "source": embedding})[0]
    assert batched.shape == (16, 3, 128, 128)
    for i in range(16):
        one = original.run(None, {"target": target[i : i + 1], "source": embedding[i : i + 1]})[0]
        np.testing.assert_allclose(batched[i : i + 1], one, atol=1e-6)  # up to float rounding
    with pytest.raises(PreparationError, match="already runs over a batch"):
        batch_by_scan(onnx.load(str(repository / "inswapper_128" / "1" / "model.onnx")), INSWAPPER_128)


def test_the_prepared_detector_takes_a_batch_and_gives_each_image_the_original_anchors(
    standin_weights: Path, tmp_path: Path
) -> None:
    """SCRFD's file takes one normalised image and gives its anchors as rows with no batch axis; the prepared
    model (so that Triton can batch concurrent detections) takes a batch of uint8 pixels, normalises them as
    insightface's SCRFD does (OpenCV's blobFromImage, mean 127.5, scale 1/128) and stacks each image's rows,
    exactly as the file gives them for that blob."""
    source_path = standin_weights / DET_10G.source_path
    original = _session(source_path)
    assert original.get_inputs()[0].shape[0] == 1 and len(original.get_outputs()[0].shape) == 2
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(standin_weights, repository)
    prepared = _session(repository / "det_10g" / "1" / "model.onnx")
    assert prepared.get_inputs()[0].shape[0] == "N" and prepared.get_inputs()[0].type == "tensor(uint8)"
    assert [len(o.shape) for o in prepared.get_outputs()] == [3] * 9
    bgr = np.random.default_rng(4).integers(0, 256, (3, 96, 128, 3), dtype=np.uint8)
    pixels = np.ascontiguousarray(bgr[..., ::-1].transpose(0, 3, 1, 2))  # RGB, NCHW: what the client sends
    batched = prepared.run(None, {"input.1": pixels})
    for i in range(3):
        mean, std = DET_10G.pixel_input or (0.0, 1.0)
        blob = cv2.dnn.blobFromImage(bgr[i], 1.0 / std, (128, 96), (mean, mean, mean), swapRB=True)
        alone = original.run(None, {"input.1": blob})
        for stacked, one in zip(batched, alone, strict=True):
            assert stacked.shape == (3, *one.shape)
            np.testing.assert_allclose(stacked[i], one, rtol=1e-5, atol=1e-6)  # up to float rounding
    with pytest.raises(PreparationError, match="already takes one"):
        take_pixels(onnx.load(str(repository / "det_10g" / "1" / "model.onnx")), DET_10G)


def test_the_prepared_detector_leaves_the_anchor_count_free_where_the_file_fixed_it(
    standin_weights: Path, tmp_path: Path
) -> None:
    """An export traced at 640x640 may declare that size's anchor counts; the prepared graph must not claim
    them for the other sizes it takes."""
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / DET_10G.source_path
    model = onnx.load(str(path))
    for output, stride in zip(model.graph.output, (8, 16, 32) * 3, strict=True):
        output.type.tensor_type.shape.dim[0].dim_value = (640 // stride) ** 2 * 2
    onnx.save(model, str(path))
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(weights, repository)
    prepared = onnx.load(str(repository / "det_10g" / "1" / "model.onnx"))
    for output in prepared.graph.output:
        batch, rows, width = output.type.tensor_type.shape.dim
        assert batch.dim_param == "N" and not rows.HasField("dim_value") and width.dim_value in (1, 4, 10)
    (scores, *_) = _session(repository / "det_10g" / "1" / "model.onnx").run(
        None, {"input.1": np.zeros((2, 3, 96, 128), np.uint8)}
    )
    assert scores.shape == (2, (96 // 8) * (128 // 8) * 2, 1)


def test_the_prepared_parser_serves_each_pixels_class_for_a_batch_of_crops(
    standin_weights: Path, tmp_path: Path
) -> None:
    """The file gives 19 logits per pixel (20 MB a crop); the prepared model gives their argmax, numpy's
    (the first maximum), as float32, for every crop of a batch."""
    source_path = standin_weights / FACE_PARSER.source_path
    original = _session(source_path)
    repository = copy_model_configs(tmp_path / "repo")
    prepare_repository(standin_weights, repository)
    prepared = _session(repository / "bisenet_resnet_34" / "1" / "model.onnx")
    assert [o.name for o in prepared.get_outputs()] == ["labels"]
    crops = np.random.default_rng(5).standard_normal((2, 3, 512, 512)).astype(np.float32)
    (labels,) = prepared.run(None, {"input": crops})
    assert labels.shape == (2, 512, 512) and labels.dtype == np.float32
    for i in range(2):
        (logits,) = original.run(None, {"input": crops[i : i + 1]})
        expected = logits[0].argmax(axis=0)
        assert len(np.unique(expected)) > 1  # a real choice between classes, not one class everywhere
        np.testing.assert_array_equal(labels[i], expected.astype(np.float32))
    with pytest.raises(PreparationError, match="not the file's class logits"):
        fold_argmax(onnx.load(str(repository / "bisenet_resnet_34" / "1" / "model.onnx")), FACE_PARSER)


def test_streamed_load_leaves_large_initializers_in_the_file_and_saves_an_identical_model(
    standin_weights: Path, tmp_path: Path
) -> None:
    path = standin_weights / INSWAPPER_128.source_path
    lazy = onnx_stream.load(path, inline_below=1024)
    external = [t for t in lazy.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all(not t.raw_data for t in external)
    assert lazy.ByteSize() < path.stat().st_size / 2
    onnx_stream.check(lazy)
    target = tmp_path / "copy.onnx"
    digest = onnx_stream.save(lazy, target, base_dir=path.parent)
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    assert onnx.load(str(target)) == onnx.load(str(path))


def test_a_truncated_file_is_named_as_unreadable(standin_weights: Path, tmp_path: Path) -> None:
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / "inswapper_128.onnx"
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(PreparationError, match=r"inswapper_128: .*inswapper_128.onnx is not a readable ONNX file"):
        prepare_repository(weights, copy_model_configs(tmp_path / "repo"))


def test_a_graph_the_checker_rejects_is_a_preparation_error_naming_the_file(
    standin_weights: Path, tmp_path: Path
) -> None:
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / "buffalo_l" / "w600k_r50.onnx"
    model = onnx.load(str(path))
    model.graph.node[-1].input.append("nowhere")  # a node input nothing defines
    onnx.save(model, str(path))
    with pytest.raises(PreparationError, match=r"w600k_r50 \(.*w600k_r50.onnx\): .* fails onnx's checker: .*nowhere"):
        prepare_repository(weights, copy_model_configs(tmp_path / "repo"))


def test_the_command_reports_a_failure_on_one_line_and_exits_non_zero(
    standin_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = _weights_copy(standin_weights, tmp_path)
    path = weights / "buffalo_l" / "w600k_r50.onnx"
    model = onnx.load(str(path))
    model.graph.node[-1].input.append("nowhere")
    onnx.save(model, str(path))
    code = main(["--weights", str(weights), "--repository", str(copy_model_configs(tmp_path / "repo"))])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: w600k_r50 (") and str(path) in err
    assert "Traceback" not in err


def test_preparation_peaks_under_one_and_a_half_times_the_largest_file(tmp_path: Path) -> None:
    """The init container's limit is sized from this bound; bench.prepare_memory measures it at 554 MB."""
    result = measure_on_standins(60_000_000, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.largest_file == "inswapper_128.onnx"
    assert result.ratio < 1.5, (
        f"peak RSS {result.peak_rss_bytes / 2**20:.0f} MiB for a {result.largest_file_bytes / 2**20:.0f} MiB file"
    )


RUNTIME_PACKAGES = ("orchestrator", "servers")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _runtime_sources() -> list[Path]:
    return sorted(p for package in RUNTIME_PACKAGES for p in (REPO_ROOT / package).rglob("*.py"))


def _imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _distinctive_contract_names() -> set[str]:
    """Model and tensor names that cannot be an ordinary string ("det_10g", "fc1", "683", ...).

    ("data", "source", "target" and "output" are also tensor names, but a search for them would find
    every other use of those words.)
    """
    names = {c.triton_name for c in ALL_MODELS} | {s.name for c in ALL_MODELS for s in (*c.inputs, *c.outputs)}
    return {name for name in names if any(ch.isdigit() for ch in name)}


def test_the_runtime_takes_model_and_tensor_names_from_the_contracts() -> None:
    """A name written again in the runtime drifts from the contract the day one of them changes."""
    names = _distinctive_contract_names()
    allowed = {REPO_ROOT / "servers" / "triton" / "contracts.py"}
    offending = []
    for path in _runtime_sources():
        if path in allowed:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        offending += [
            f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings
        ]
    assert offending == []
