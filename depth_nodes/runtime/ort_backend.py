"""The ONNX Runtime backend: an exported ONNX file on the CPU (or ORT's CUDA provider when asked and present).

ONNX Runtime runs the ONNX as it is: precision is that of the file (an fp16 file runs in fp16). Fixed-shape
files are checked against the input sizes before running, so a resolution mismatch names the exported size.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from depth_nodes.runtime.base import Backend, is_torch, to_numpy
from depth_nodes.runtime.errors import BackendUnavailableError, ModelError
from depth_nodes.runtime.onnx_io import OnnxInfo, check_input_shapes, read_onnx


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailableError(
            f"onnxruntime is not installed ({exc}): pip install 'depth_nodes[ml]'"
        ) from None
    return ort


class OnnxRuntimeBackend(Backend):
    kind = "onnxruntime"

    def __init__(
        self, onnx_path: str | Path, precision: str = "fp32", device: str = "cpu", threads: int = 0, spin: bool = False
    ):
        super().__init__(precision, device)
        self.onnx_path = Path(onnx_path)
        self.threads = int(threads)
        self.spin = spin
        self.session = None
        self.info: OnnxInfo | None = None

    def load(self) -> None:
        ort = _import_ort()
        self.info = read_onnx(self.onnx_path)
        file_precision = "fp16" if "float16" in self.info.input_dtypes.values() else "fp32"
        if self.precision != file_precision:
            raise ModelError(
                f"onnxruntime runs {self.onnx_path.name} in {file_precision} as exported; "
                f"{self.precision} needs TensorRT (or an ONNX converted to {self.precision})"
            )
        providers = ["CPUExecutionProvider"]
        if self.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailableError(
                    "onnxruntime: device 'cuda' requested but this onnxruntime has no CUDAExecutionProvider "
                    "(install onnxruntime-gpu)"
                )
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        if self.threads > 0:
            opts.intra_op_num_threads = self.threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between inferences: the node shares the CPU with projection, colourising, DDS.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), sess_options=opts, providers=providers)
        except Exception as exc:  # ORT raises InvalidProtobuf / Fail / InvalidGraph for bad files
            raise ModelError(f"onnxruntime cannot load {self.onnx_path}: {exc}") from None
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.model_name = self.info.model_name
        self.notes.append(f"providers={','.join(self.session.get_providers())}")

    def close(self) -> None:
        self.session = None
        super().close()

    def _infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        torch_in = next((v for v in inputs.values() if is_torch(v)), None)
        feed = {n: np.ascontiguousarray(to_numpy(inputs[n])) for n in self.input_names}
        check_input_shapes(self.info, {n: a.shape for n, a in feed.items()})
        try:
            outs = self.session.run(list(self.output_names), feed)
        except Exception as exc:
            raise ModelError(f"onnxruntime failed on {self.onnx_path.name}: {exc}") from None
        result = dict(zip(self.output_names, outs, strict=True))
        if torch_in is not None:
            import torch

            return {n: torch.from_numpy(np.asarray(o)).to(torch_in.device) for n, o in result.items()}
        return result
