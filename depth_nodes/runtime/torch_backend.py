"""The PyTorch backend: a depth_nodes model (directory or module) on CPU or CUDA, FP32 or FP16 autocast.

On CUDA, FP16 uses ``torch.autocast`` (convolutions in half, reductions in float) and ``compile=True`` wraps
the model in ``torch.compile`` (mode ``reduce-overhead`` = CUDA graphs) after warm-up shapes are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from depth_nodes.runtime.base import Backend, is_torch
from depth_nodes.runtime.errors import BackendUnavailableError, ModelError


class TorchBackend(Backend):
    kind = "torch"

    def __init__(
        self, model: Any, precision: str = "fp32", device: str = "cpu", compile: bool = False, threads: int = 0
    ) -> None:
        super().__init__(precision, device)
        self._source = model
        self.compile = compile
        self.threads = int(threads)
        self.model = None

    def load(self) -> None:
        import torch

        from depth_nodes import models

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError("torch backend: device 'cuda' requested but no CUDA GPU is visible")
        if self.precision == "int8":
            raise BackendUnavailableError("torch backend runs fp32 or fp16; int8 needs TensorRT")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise BackendUnavailableError("torch backend: fp16 autocast needs a CUDA device; use fp32 on the CPU")
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        src = self._source
        model = models.load(src) if isinstance(src, (str, Path)) else src
        if not isinstance(model, torch.nn.Module):
            raise ModelError(f"torch backend needs a model directory or torch.nn.Module, got {type(src).__name__}")
        cfg = getattr(model, "depth_nodes_config", {})
        self.model_name = cfg.get("model", type(model).__name__)
        self.input_names = tuple(getattr(model, "input_names", ()))
        self.output_names = tuple(getattr(model, "output_names", ()))
        if not self.input_names or not self.output_names:
            raise ModelError(f"model {self.model_name!r} does not declare input_names / output_names")
        self.model = model.eval().to(self.device)
        if self.compile:
            mode = "reduce-overhead" if self.device.startswith("cuda") else "default"
            self.model = torch.compile(self.model, mode=mode, dynamic=False)
            self.notes.append(f"torch.compile mode={mode}")

    def close(self) -> None:
        self.model = None
        super().close()

    def _infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        as_numpy = not any(is_torch(v) for v in inputs.values())
        feed = [torch.as_tensor(inputs[n]).to(self.device, non_blocking=True) for n in self.input_names]
        with torch.inference_mode():
            if self.precision == "fp16":
                with torch.autocast("cuda", dtype=torch.float16):
                    outs = self.model(*feed)
            else:
                outs = self.model(*feed)
        if is_torch(outs):
            outs = (outs,)
        result = {n: o.float() for n, o in zip(self.output_names, outs, strict=True)}
        if as_numpy:
            return {n: o.cpu().numpy() for n, o in result.items()}
        return result
