"""The committed gen/python matches a fresh generation from protos/ (run `make proto` when this fails)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("protos_generate", REPO_ROOT / "protos" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("protos_generate", module)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    generate = _generator()
    generate.generate(tmp_path)

    stale = generate.differences(tmp_path, REPO_ROOT / "gen" / "python")

    assert stale == [], "generated code is out of date, run `make proto`:\n" + "\n".join(stale)


def test_a_changed_proto_is_detected(tmp_path: Path) -> None:
    generate = _generator()
    protos = tmp_path / "protos"
    (protos / "inpaint" / "v1").mkdir(parents=True)
    for proto in generate.proto_files():
        text = proto.read_text()
        if proto.name == "image.proto":
            text = text.replace("string mime_type = 2;", "string mime_type = 2;\n  uint32 width = 3;")
        (protos / "inpaint" / "v1" / proto.name).write_text(text)
    generate.generate(tmp_path / "out", protos)

    stale = generate.differences(tmp_path / "out", REPO_ROOT / "gen" / "python")

    assert any(line.startswith("inpaint/v1/image_pb2.py") for line in stale), stale


def test_generated_code_imports_under_the_pinned_protobuf() -> None:
    from inpaint.v1 import image_pb2, qwen_edit_pb2, qwen_edit_pb2_grpc

    request = qwen_edit_pb2.EditRequest(image=image_pb2.Image(data=b"x", mime_type="image/png"), seeds=[1, 2])
    assert qwen_edit_pb2.EditRequest.FromString(request.SerializeToString()) == request
    assert hasattr(qwen_edit_pb2_grpc, "QwenEditServiceStub")
    assert qwen_edit_pb2.DESCRIPTOR.services_by_name["QwenEditService"].full_name == "inpaint.v1.QwenEditService"
