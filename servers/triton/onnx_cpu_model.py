"""Triton python-backend model that runs the ONNX file beside it with onnxruntime on the CPU.

No package registry ships Triton's ONNX Runtime backend, so the CPU configuration
(`configs/cpu.pbtxt`) serves the same `model.onnx` through this runner; production uses
`platform: "onnxruntime_onnx"` in `config.pbtxt`. The preparation command copies this file to
`<model>/1/model.py`. Requests that Triton's dynamic batcher groups are concatenated along the
batch axis and run as one onnxruntime call.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        threads = config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "0")
        options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]
        self.batching = int(config.get("max_batch_size", 0)) > 0

    def _run(self, feeds):
        return self.session.run(self.output_names, feeds)

    def execute(self, requests):
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names} for r in requests
        ]
        try:
            if self.batching and len(requests) > 1:
                sizes = [f[self.input_names[0]].shape[0] for f in feeds]
                merged = {n: np.concatenate([f[n] for f in feeds]) for n in self.input_names}
                outputs = self._run(merged)
                bounds = np.cumsum(sizes)[:-1]
                per_request = list(zip(*(np.split(o, bounds) for o in outputs)))
            else:
                per_request = [self._run(f) for f in feeds]
        except Exception as exc:  # report the failure to every caller rather than crash the stub
            error = pb_utils.TritonError(f"onnxruntime failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor(n, np.ascontiguousarray(o)) for n, o in zip(self.output_names, outs)]
            )
            for outs in per_request
        ]
