"""Depth Anything V2 (relative / metric) and Prompt Depth Anything through ``transformers``, from local files only.

``load_hf_model(dir)`` reads ``config.json`` + weights with ``AutoModelForDepthEstimation.from_pretrained(dir,
local_files_only=True)``: never a hub download at run time; a missing directory or file raises
:class:`MonoModelError` naming the directory and the files expected there.

Pre-processing is our own (numpy + OpenCV, no PIL): the image is resized with its aspect kept to a height of
``input_height_px`` and a width rounded to a multiple of 14 (the ViT patch), bicubic like the DA processors,
then ImageNet-normalised. Doing it here keeps one resize for image and prompt alike, works at any camera size
without the processor's PIL round trip, and is what the ONNX/TensorRT path needs anyway (fixed profiles).

Outputs: relative DA -> affine-invariant inverse depth (kind ``inverse``); metric DA -> metres (``metric``);
PromptDA -> metres in the prompt's units (``metric``). Prompt Depth Anything normalises the prompt by its
min/max: a flat or empty prompt would divide by zero and give NaN, so such a prompt is dropped (the model then
runs unprompted and the scale tracker makes it metric).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.errors import DepthNodesError
from depth_nodes.models.registry import IMAGENET_MEAN, IMAGENET_STD
from depth_nodes.mono.scale import INVERSE, METRIC

PATCH_PX = 14
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
MODEL_TYPES = {"depth_anything": "Depth Anything (V2)", "prompt_depth_anything": "Prompt Depth Anything"}


class MonoModelError(DepthNodesError):
    """A monocular model directory is missing, incomplete or not a supported model."""


def input_size(h: int, w: int, input_height_px: int) -> tuple[int, int]:
    """(H, W) multiples of 14 with the aspect of ``h x w`` kept (to the rounding) at ``input_height_px``."""
    hh = max(PATCH_PX, round(input_height_px / PATCH_PX) * PATCH_PX)
    ww = max(PATCH_PX, round(w * hh / h / PATCH_PX) * PATCH_PX)
    return hh, ww


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
    """A loaded transformers depth model with its kind and pre-processing."""

    model: object
    kind: str  # INVERSE (relative) or METRIC
    name: str
    prompted: bool
    input_height_px: int = 518
    min_prompt_points: int = 50
    min_prompt_spread_m: float = 0.5

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        hh, ww = input_size(h, w, self.input_height_px)
        x = cv2.resize(rgb, (ww, hh), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
        x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

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

    def predict(self, rgb: np.ndarray, sparse_m: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
        """(H x W float32 prediction at the image's size, whether a prompt was used)."""
        import torch

        h, w = rgb.shape[:2]
        x = self.preprocess(rgb)
        kwargs = {}
        prompt = self.prompt(sparse_m, x.shape[2:]) if self.prompted else None
        if prompt is not None:
            kwargs["prompt_depth"] = torch.from_numpy(prompt)
        with torch.inference_mode():
            out = self.model(pixel_values=torch.from_numpy(x), **kwargs).predicted_depth
        pred = out.reshape(out.shape[-2], out.shape[-1]).float().numpy()
        pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_LINEAR)
        pred[~np.isfinite(pred)] = np.nan
        return pred.astype(np.float32), prompt is not None


def load_hf_model(model_dir: str | Path, input_height_px: int = 518, device: str = "cpu") -> HFDepthModel:
    """Load a Depth Anything V2 / Prompt Depth Anything directory saved with ``save_pretrained``."""
    cfg = check_model_dir(model_dir)
    try:
        from transformers import AutoModelForDepthEstimation
    except ImportError as exc:
        raise MonoModelError(f"transformers is not installed ({exc}): pip install 'depth_nodes[ml]'") from None
    try:
        model = AutoModelForDepthEstimation.from_pretrained(str(Path(model_dir).expanduser()), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for broken files
        raise MonoModelError(f"cannot load the monocular model in {model_dir}: {type(exc).__name__}: {exc}") from None
    model = model.to("cpu" if device == "auto" else device).eval()
    mtype = cfg["model_type"]
    prompted = mtype == "prompt_depth_anything"
    metric = prompted or cfg.get("depth_estimation_type", "relative") == "metric"
    variant = "metric" if metric else "relative"
    name = f"{'promptda' if prompted else 'da_v2'}:{variant}:{Path(model_dir).name}"
    return HFDepthModel(model, METRIC if metric else INVERSE, name, prompted, input_height_px)
