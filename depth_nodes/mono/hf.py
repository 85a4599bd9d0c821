"""Depth Anything V2 (relative / metric) and Prompt Depth Anything through ``transformers``, from local files only.

``load_hf_model(dir)`` reads ``config.json`` + weights with ``AutoModelForDepthEstimation.from_pretrained(dir,
local_files_only=True)``: never a hub download at run time; a missing directory or file raises
:class:`MonoModelError` naming the directory and the files expected there.

Device end to end: the model is moved to the configured ``device`` (``auto`` = ``cuda:0`` when torch sees a CUDA
GPU), the uint8 image is uploaded and pre-processed there (:mod:`depth_nodes.mono.da_preprocess`: equal to
transformers' ``DPTImageProcessor`` of the directory's ``preprocessor_config.json``), the prediction is resized to
the camera there, and only the H x W result comes back. ``backend`` ``onnxruntime`` / ``tensorrt`` run an ONNX
(the directory's ``model.onnx``, else one exported with :mod:`depth_nodes.mono.da_export` into the engine cache
at the camera's processed size) through :func:`depth_nodes.runtime.create_backend`; ``auto`` = TensorRT when a
CUDA GPU and ``tensorrt`` are present, else torch.

Outputs: relative DA -> affine-invariant inverse depth (kind ``inverse``); metric DA -> metres (``metric``);
PromptDA -> metres in the prompt's units (``metric``). Prompt Depth Anything normalises the prompt by its
min/max: a flat or empty prompt would divide by zero and give NaN, so such a prompt is dropped (the model then
runs unprompted and the scale tracker makes it metric).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.core.scale_fit import INVERSE, METRIC
from depth_nodes.errors import DepthNodesError
from depth_nodes.mono.da_preprocess import ProcessorSpec, preprocess_torch, resize_size, upsample_torch

log = logging.getLogger(__name__)
PATCH_PX = 14
ONNX_FILE = "model.onnx"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
MODEL_TYPES = {"depth_anything": "Depth Anything (V2)", "prompt_depth_anything": "Prompt Depth Anything"}
MONO_BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


class MonoModelError(DepthNodesError):
    """A monocular model directory is missing, incomplete or not a supported model."""


def check_model_dir(model_dir: str | Path) -> dict:
    """The directory's ``config.json`` (parsed); :class:`MonoModelError` naming what is missing."""
    d = Path(model_dir).expanduser()
    expected = f"config.json and one of {', '.join(WEIGHT_FILES)}"
    if not str(model_dir):
        raise MonoModelError(f"no mono_model_dir given: set it to a directory holding {expected}")
    if not d.is_dir():
        raise MonoModelError(f"monocular model directory {d} does not exist (expected {expected} in it; "
                             "weights are never downloaded at run time)")  # fmt: skip
    if not (d / "config.json").is_file() or not any((d / f).is_file() for f in WEIGHT_FILES):
        have = ", ".join(sorted(p.name for p in d.iterdir())) or "nothing"
        raise MonoModelError(f"monocular model directory {d} lacks its weights: expected {expected}; found {have}")
    try:
        cfg = json.loads((d / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise MonoModelError(f"{d / 'config.json'} is unreadable: {exc}") from None
    if cfg.get("model_type") not in MODEL_TYPES:
        raise MonoModelError(f"{d} holds model_type {cfg.get('model_type')!r}; supported: {', '.join(MODEL_TYPES)}")
    return cfg




@dataclass
class HFDepthModel:
    """A loaded transformers depth model (or its ONNX on a runtime backend) with its kind and pre-processing."""

    model: object  # the torch module (None when ``runtime`` runs an ONNX of it)
    kind: str  # INVERSE (relative) or METRIC
    name: str
    prompted: bool
    spec: ProcessorSpec
    device: str = "cpu"
    runtime: object = None  # a depth_nodes.runtime Backend (onnxruntime / tensorrt) or None (torch)
    min_prompt_points: int = 50
    min_prompt_spread_m: float = 0.5

    @property
    def backend(self) -> str:
        return self.runtime.kind if self.runtime is not None else "torch"

    def preprocess(self, rgb: np.ndarray):
        """``pixel_values`` (1 x 3 x H x W torch tensor on :attr:`device`), as transformers' processor makes them."""
        return preprocess_torch(rgb, self.spec, self.device)

    def prompt(self, sparse_m: np.ndarray | None, hw: tuple[int, int]) -> np.ndarray | None:
        """Dense low-resolution prompt (1 x 1 x h x w, m) from the projected LiDAR; None when flat or empty."""
        if sparse_m is None:
            return None
        sparse = np.nan_to_num(np.asarray(sparse_m, np.float32), nan=0.0)
        valid = sparse > 0
        if valid.sum() < self.min_prompt_points or np.ptp(sparse[valid]) < self.min_prompt_spread_m:
            return None  # min == max would make PromptDA's (d - min) / (max - min) NaN
        # nearest-return fill (OpenCV distance transform labels), then down to 1/4 of the model input
        _, labels = cv2.distanceTransformWithLabels((~valid).astype(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)  # fmt: skip
        vals = np.zeros(int(labels.max()) + 1, np.float32)
        vals[labels[valid]] = sparse[valid]
        dense = vals[labels]
        ph, pw = max(PATCH_PX, hw[0] // 4), max(PATCH_PX, hw[1] // 4)
        small = cv2.resize(dense, (pw, ph), interpolation=cv2.INTER_NEAREST)
        return small[None, None].astype(np.float32)

    def predict_tensor(self, rgb: np.ndarray, sparse_m: np.ndarray | None = None):
        """(H x W float32 torch tensor on :attr:`device` at the image's size, whether a prompt was used)."""
        import torch

        h, w = rgb.shape[:2]
        x = self.preprocess(rgb)
        if self.runtime is not None:
            info = getattr(self.runtime, "info", None)
            res = info.resolution if info is not None else None
            if res is not None and tuple(res) != tuple(x.shape[2:]):
                raise MonoModelError(f"{self.name}: the {self.backend} model was made for {res[0]}x{res[1]} inputs, "
                                     f"this {h}x{w} camera needs {x.shape[2]}x{x.shape[3]}: set model_resolutions "
                                     f"to {h}x{w} (the ONNX / engine is re-made for it)")  # fmt: skip
            feed = {"pixel_values": x if self.device.startswith("cuda") else x.numpy()}
            out = torch.as_tensor(self.runtime.infer(feed)["predicted_depth"]).to(self.device)
            return upsample_torch(out, (h, w)), False
        kwargs = {}
        prompt = self.prompt(sparse_m, tuple(x.shape[2:])) if self.prompted else None
        if prompt is not None:
            kwargs["prompt_depth"] = torch.from_numpy(prompt).to(self.device)
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            out = self.model(pixel_values=x.to(dtype), **kwargs).predicted_depth
        return upsample_torch(out, (h, w)), prompt is not None

    def predict(self, rgb: np.ndarray, sparse_m: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
        """(H x W float32 prediction at the image's size, NaN where not finite; whether a prompt was used)."""
        pred, used = self.predict_tensor(rgb, sparse_m)
        out = pred.float().cpu().numpy().astype(np.float32)
        out[~np.isfinite(out)] = np.nan
        return out, used


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda:0`` when torch sees a CUDA GPU, else ``cpu``; ``cuda`` -> ``cuda:0``; others as given."""
    if device in ("", "auto"):
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return "cuda:0" if device == "cuda" else device


def choose_mono_backend(backend: str, device: str) -> str:
    if backend not in MONO_BACKENDS:
        raise MonoModelError(f"unknown mono backend {backend!r}; use one of {', '.join(MONO_BACKENDS)}")
    if backend != "auto":
        return backend
    has_trt = importlib.util.find_spec("tensorrt") is not None
    return "tensorrt" if device.startswith("cuda") and has_trt else "torch"


def load_hf_model(model_dir: str | Path, input_size_px: int = 0, device: str = "cpu", backend: str = "torch",
                  precision: str = "fp32", engine_cache_dir: str | Path = "~/.cache/depth_nodes/engines",
                  camera_hw: tuple[int, int] = (352, 1216)) -> HFDepthModel:  # fmt: skip
    """Load a Depth Anything V2 / Prompt Depth Anything directory saved with ``save_pretrained``.

    ``input_size_px`` > 0 overrides the processor's target size (both sides; 0 = the directory's
    ``preprocessor_config.json``, 518 for the released models). ``camera_hw``: the camera size an ONNX / engine is
    exported / built for (fixed shapes: the DA head bakes its output size into the graph)."""
    cfg = check_model_dir(model_dir)
    spec = ProcessorSpec.from_dir(model_dir, input_size_px)
    try:
        from transformers import AutoModelForDepthEstimation
    except ImportError as exc:
        raise MonoModelError(f"transformers is not installed ({exc}): pip install 'depth_nodes[ml]'") from None
    dev = resolve_device(device)
    kind = choose_mono_backend(backend, dev)
    try:
        model = AutoModelForDepthEstimation.from_pretrained(str(Path(model_dir).expanduser()), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for broken files
        raise MonoModelError(f"cannot load the monocular model in {model_dir}: {type(exc).__name__}: {exc}") from None
    mtype = cfg["model_type"]
    prompted = mtype == "prompt_depth_anything"
    metric = prompted or cfg.get("depth_estimation_type", "relative") == "metric"
    variant = "metric" if metric else "relative"
    name = f"{'promptda' if prompted else 'da_v2'}:{variant}:{Path(model_dir).name}"
    out = HFDepthModel(None, METRIC if metric else INVERSE, name, prompted, spec, dev)
    if kind == "torch":
        if precision not in ("fp32", "fp16") or (precision == "fp16" and not dev.startswith("cuda")):
            raise MonoModelError(f"mono precision {precision!r} on torch {dev}: fp32, or fp16 on CUDA")
        model = model.to(dev).eval()
        out.model = model.half() if precision == "fp16" else model
        return out
    if prompted:
        raise MonoModelError(f"{name}: the {kind} backend runs Depth Anything V2 only (PromptDA's prompt input "
                             "is not exported); use mono_backend torch")  # fmt: skip
    from depth_nodes.runtime import create_backend

    onnx = _onnx_for(model.eval(), Path(model_dir).expanduser(), spec, camera_hw, Path(engine_cache_dir).expanduser())
    hw = resize_size(*camera_hw, spec)
    out.runtime = create_backend(onnx, kind, precision, dev, engine_cache_dir, [hw])
    out.runtime.ensure_loaded()
    return out


def _onnx_for(model, model_dir: Path, spec: ProcessorSpec, camera_hw: tuple[int, int], cache: Path) -> Path:
    """The directory's ``model.onnx`` when its size fits the camera, else an export into ``cache`` (kept)."""
    from depth_nodes.mono.da_export import export_da
    from depth_nodes.runtime.onnx_io import read_onnx, sha256_file

    hw = resize_size(*camera_hw, spec)
    own = model_dir / ONNX_FILE
    if own.is_file():
        res = read_onnx(own, check=False).resolution
        if res is None or tuple(res) == hw:
            return own
        log.warning("%s is for %s, the camera %s needs %s: exporting a fresh one into %s", own, res, camera_hw, hw, cache)
    weights = next(model_dir / f for f in WEIGHT_FILES if (model_dir / f).is_file())
    out = cache / f"{model_dir.name}-{sha256_file(weights)[:12]}-{hw[0]}x{hw[1]}.onnx"
    if not out.is_file():
        log.warning("no %s for %dx%d in %s: exporting one to %s (once; minutes for a ViT-S)", ONNX_FILE, *hw, model_dir, out)
        export_da(model, out, hw)
    return out
