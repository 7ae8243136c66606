"""Triton python-backend model that runs the ONNX file beside it with onnxruntime on the CPU.

No package registry ships Triton's ONNX Runtime backend, so the CPU configuration
(`configs/cpu.pbtxt`) serves the same `model.onnx` through this runner; production uses
`platform: "onnxruntime_onnx"` in `config.pbtxt`. The preparation command copies this file to
`<model>/1/model.py`.

Requests that Triton's dynamic batcher groups arrive in one `execute`. By default each item (each row of
each request) runs on its own, so that a face gets the same embedding whatever else shared its batch:
onnxruntime's CPU kernels round differently with the batch size, and the search's scores, and so its
winner, must not depend on which other requests happened to arrive together. The parameter
`batch_invariant: "false"` concatenates the grouped requests into one call instead (faster, reproducible
only to rounding).
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
        invariant = config.get("parameters", {}).get("batch_invariant", {}).get("string_value", "true")
        self.batch_invariant = invariant.strip().lower() not in ("false", "0", "no")

    def _run(self, feeds):
        if self.batching and self.batch_invariant:
            rows = feeds[self.input_names[0]].shape[0]
            if rows > 1:
                each = [
                    self.session.run(self.output_names, {n: a[i : i + 1] for n, a in feeds.items()})
                    for i in range(rows)
                ]
                return [np.concatenate([row[k] for row in each]) for k in range(len(self.output_names))]
        return self.session.run(self.output_names, feeds)

    def execute(self, requests):
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names} for r in requests
        ]
        try:
            if self.batching and len(requests) > 1 and not self.batch_invariant:
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
