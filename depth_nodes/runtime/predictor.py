"""The learned predictor: a loaded backend + its I/O contract, ``predict(rgb, sparse) -> Completion``.

:func:`build_predictor` creates the model of ``model_dir`` (a model directory or an ``.onnx``; empty: the
shipped checkpoint) on ``backend`` / ``precision`` / ``device``, loads it and checks it on a warm-up frame.
ROS-free and pipeline-free (``estimate`` only reads ``inputs.rgb`` / ``inputs.sparse.depth``): the pipeline's
``learned`` estimator, with its classical fallback, retries and rebuilds, wraps it in
:mod:`depth_nodes.pipeline.learned_estimator`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_nodes.completion.base import Completion
from depth_nodes.errors import EmptyInputError
from depth_nodes.runtime.base import Backend
from depth_nodes.runtime.errors import ModelError
from depth_nodes.runtime.factory import create_backend
from depth_nodes.runtime.frames import street_frame
from depth_nodes.runtime.preprocess import (
    Normalisation,
    crop_outputs,
    padded_size,
    to_inputs_numpy,
    to_inputs_torch,
)

log = logging.getLogger(__name__)
LEARNED = "learned"


@dataclass
class LearnedOptions:
    """Runtime settings of a learned predictor (the node parameters of the same names)."""

    model_dir: str = ""
    backend: str = "auto"
    precision: str = "fp32"
    device: str = "auto"
    engine_cache_dir: str = "~/.cache/depth_nodes/engines"
    force_engine_update: bool = False
    resolutions: list[tuple[int, int]] = field(default_factory=lambda: [(352, 1216)])
    threads: int = 0  # CPU threads of torch / ONNX Runtime (0 = the library's default)
    retry_backoff_s: float = 0.5  # first wait after a transient GPU error (doubles per error in a row)
    max_retries: int = 5  # transient errors in a row before the classical completer takes over for good
    backend_options: dict = field(default_factory=dict)  # extra create_backend options (TensorRT: workspace_mb...)


class LearnedPredictor:
    """A loaded backend + its I/O contract (normalisation, stride, fixed size); ``estimate`` takes the
    pipeline's frame inputs (duck-typed)."""

    needs_image = True
    needs_lidar = True

    def __init__(self, backend: Backend, norm: Normalisation, stride: int, fixed: tuple[int, int] | None) -> None:
        self.backend = backend
        self.norm = norm
        self.stride = max(1, int(stride))
        self.fixed = fixed
        self.name = f"{LEARNED}:{backend.model_name}"

    def predict(self, rgb: np.ndarray, sparse_m: np.ndarray) -> Completion:
        h, w = sparse_m.shape
        if self.backend.device.startswith("cuda"):
            feed = to_inputs_torch(rgb, sparse_m, self.norm, self.stride, self.backend.device, self.fixed)
        else:
            feed = to_inputs_numpy(rgb, sparse_m, self.norm, self.stride, self.fixed)
        depth, conf = crop_outputs(self.backend.infer(feed), h, w)
        return Completion(depth, conf)

    def torch_forward(self, image, sparse_m):
        """Differentiable depth (1 x 1 x H x W m) of a 1 x 3 x H x W RGB tensor in [0, 1] and 1 x 1 x H x W sparse
        depth (m, 0 = none): the preprocessing of :func:`to_inputs_torch` in torch, so gradients reach the
        pixels (PGD, :mod:`depth_nodes.eval.robustness.adversarial`). Torch backend only."""
        import torch

        model = getattr(self.backend, "model", None)
        if not isinstance(model, torch.nn.Module):
            raise ModelError(f"{self.name}: torch_forward needs the torch backend, not {self.backend.kind!r}")
        dev = self.backend.device
        h, w = image.shape[-2:]
        ph, pw = self.fixed or padded_size(h, w, self.stride)
        img = image.to(dev, torch.float32).reshape(1, 3, h, w) * (255.0 * self.norm.scale)
        if (ph, pw) != (h, w):
            img = torch.nn.functional.pad(img, (0, pw - w, 0, ph - h), mode="replicate")
        mean = torch.tensor(self.norm.mean, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(self.norm.std, device=dev).view(1, 3, 1, 1)
        sp = sparse_m.to(dev, torch.float32).reshape(1, 1, h, w)
        ok = torch.isfinite(sp) & (sp > 0)
        inv = torch.where(ok, 1.0 / torch.where(ok, sp, torch.ones_like(sp)), torch.zeros_like(sp))
        feed = {"image": (img - mean) / std, "sparse_inv_depth": torch.nn.functional.pad(inv, (0, pw - w, 0, ph - h))}
        outs = model(*(feed[n] for n in self.backend.input_names))
        outs = (outs,) if torch.is_tensor(outs) else outs
        depth = dict(zip(self.backend.output_names, outs, strict=True))["depth"]
        return depth[:, :, :h, :w].float()

    def estimate(self, inputs) -> Completion:
        if inputs.sparse is None:
            raise EmptyInputError("no LiDAR depth for the learned estimator")
        if inputs.rgb is None:
            raise EmptyInputError("the learned estimator needs the camera image")
        return self.predict(inputs.rgb, inputs.sparse.depth)


def build_predictor(opts: LearnedOptions, on_line: Callable[[str], None] | None = None) -> LearnedPredictor:
    """Create, load and warm up the learned predictor of ``opts``; :class:`ModelError` naming what is wrong."""
    if not opts.model_dir:  # the checkpoint shipped in the package
        from depth_nodes.models import shipped_model_dir

        path = shipped_model_dir()
        if not path.is_dir():
            raise ModelError(f"no model_dir given and no shipped checkpoint in {path}")
    else:
        path = Path(opts.model_dir).expanduser()
    if not path.exists():
        raise ModelError(f"model_dir {path} does not exist")
    extra = dict(opts.backend_options)
    if on_line:
        extra["on_line"] = on_line  # TensorRT build progress (other backends ignore it)
    if opts.threads:
        extra["threads"] = int(opts.threads)
    backend = create_backend(
        path, opts.backend, opts.precision, opts.device, opts.engine_cache_dir, opts.resolutions,
        opts.force_engine_update, **extra,
    )  # fmt: skip
    backend.ensure_loaded()
    info = getattr(backend, "info", None)
    if info is not None:  # ONNX-based backends: the contract travels in the ONNX metadata
        norm = Normalisation.from_contract(info.json_meta("inputs"))
        stride, fixed = info.stride, (None if info.dynamic_hw else info.resolution)
    else:
        cfg = backend.model.depth_nodes_config
        norm = Normalisation.from_contract(cfg.get("inputs"))
        stride, fixed = int(getattr(backend.model, "stride", 1)), None
    est = LearnedPredictor(backend, norm, stride, fixed)
    h, w = fixed or opts.resolutions[0]
    img, sp = street_frame(h, w, seed=7)
    out = est.predict(img, sp)
    if not np.isfinite(out.depth).any():
        raise ModelError(f"model {backend.model_name!r} gives no finite depth on a warm-up frame")
    return est


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    """``"352x1216,376x1248"`` -> ``[(352, 1216), (376, 1248)]`` (H x W); :class:`ModelError` when malformed."""
    try:
        out = [tuple(int(v) for v in part.strip().lower().split("x")) for part in text.split(",") if part.strip()]
    except ValueError:
        out = []
    if not out or any(len(r) != 2 or min(r) < 1 for r in out):
        raise ModelError(f"resolutions must be HxW[,HxW...], got {text!r}")
    return out  # type: ignore[return-value]
