"""The backend interface every inference runtime implements (torch, ONNX Runtime, TensorRT).

A backend is made for one model, :meth:`Backend.load`-ed once (may take minutes for a TensorRT build),
:meth:`Backend.warmup`-ed, then called with :meth:`Backend.infer` on named inputs. Inputs may be numpy arrays or
torch tensors; outputs come back as the same kind as the inputs (numpy in -> numpy out; torch in -> torch out on
the backend's device), so a GPU pipeline never leaves the GPU and a CPU pipeline never imports torch needlessly.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from depth_nodes.runtime.errors import ModelError

PRECISIONS = ("fp32", "fp16", "int8")
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def is_torch(x: Any) -> bool:
    """True for a torch tensor, without importing torch."""
    return type(x).__module__.startswith("torch")


def to_numpy(x: Any) -> np.ndarray:
    if is_torch(x):
        return x.detach().float().cpu().numpy() if x.dtype.is_floating_point else x.detach().cpu().numpy()
    return np.asarray(x)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


class Backend(ABC):
    """One model on one runtime. Subclasses set ``kind`` and implement :meth:`load` and :meth:`_infer`."""

    kind = "base"

    def __init__(self, precision: str = "fp32", device: str = "cpu") -> None:
        self.precision = check_precision(precision)
        self.device = device
        self.input_names: tuple[str, ...] = ()
        self.output_names: tuple[str, ...] = ()
        self.model_name = ""
        self.loaded = False
        self.load_time_s = 0.0
        #: why this backend / precision was chosen (set by :func:`depth_nodes.runtime.create_backend`)
        self.reason = ""
        self.notes: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    @abstractmethod
    def load(self) -> None:
        """Open / build the model; raises :class:`ModelError` (subclasses) naming what is wrong."""

    def ensure_loaded(self) -> None:
        if not self.loaded:
            t0 = time.perf_counter()
            self.load()
            self.loaded = True
            self.load_time_s = time.perf_counter() - t0

    def warmup(self, inputs: Mapping[str, Any], iterations: int = 2) -> dict[str, Any]:
        """Run ``iterations`` inferences on ``inputs`` (first-call allocations, autotuning); the last outputs."""
        out: dict[str, Any] = {}
        for _ in range(max(1, iterations)):
            out = self.infer(inputs)
        return out

    def infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Named outputs for named inputs (see the module docstring for array kinds)."""
        self.ensure_loaded()
        missing = [n for n in self.input_names if n not in inputs]
        extra = [n for n in inputs if n not in self.input_names]
        if missing or extra:
            raise ModelError(
                f"{self.kind} model {self.model_name!r} takes inputs {list(self.input_names)}; "
                f"missing {missing}, unexpected {extra}"
            )
        return self._infer(inputs)

    @abstractmethod
    def _infer(self, inputs: Mapping[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None:
        """Release the runtime's resources (sessions, engines, thread pools) while the interpreter is healthy."""
        self.loaded = False

    def describe(self) -> dict[str, str]:
        """Key/values for diagnostics and logs."""
        d = {
            "backend": self.kind,
            "device": self.device,
            "precision": self.precision,
            "model": self.model_name,
            "inputs": ",".join(self.input_names),
            "outputs": ",".join(self.output_names),
            "load_time_s": f"{self.load_time_s:.2f}",
        }
        if self.reason:
            d["backend_reason"] = self.reason
        if self.notes:
            d["backend_notes"] = "; ".join(self.notes)
        return d

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_name!r} on {self.device} {self.precision}>"
