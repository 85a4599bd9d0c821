"""The own monocular net (``mono_unet``) as a predictor: load (shipped weights by default), resize, infer.

Frames are resized so the focal length is the one the net was trained at (``focal_px`` in its ``train.json``,
360 px: KITTI at half resolution), padded to the net's stride, and the depth is resized back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.mono.hf import MonoModelError
from depth_nodes.mono.scale import METRIC

#: The shipped net: package data (config.json + model.safetensors + train.json).
SHIPPED_DIR = Path(__file__).parent / "weights" / "mono_unet"
DEFAULT_FOCAL_PX = 360.0


@dataclass
class OwnMonoModel:
    model: object  # torch.nn.Module (MonoUNet)
    name: str
    focal_px: float = DEFAULT_FOCAL_PX
    kind: str = METRIC
    prompted: bool = False

    def predict(self, rgb: np.ndarray, K: np.ndarray) -> np.ndarray:
        """Metric depth (m, H x W float32) of ``rgb`` with intrinsics ``K`` (before the scale fit)."""
        import torch

        from depth_nodes.mono.net import normalise_rgb, ray_elevation

        h, w = rgb.shape[:2]
        s = self.focal_px / float(K[1, 1])
        stride = int(self.model.stride)
        hs, ws = max(stride, round(h * s)), max(stride, round(w * s))
        small = cv2.resize(rgb, (ws, hs), interpolation=cv2.INTER_AREA)
        Ks = np.asarray(K, np.float64).copy()
        Ks[0] *= ws / w
        Ks[1] *= hs / h
        ph, pw = -hs % stride, -ws % stride
        img = np.pad(small, ((0, ph), (0, pw), (0, 0)), mode="edge")
        ray = ray_elevation(hs + ph, ws + pw, Ks)
        with torch.inference_mode():
            out = self.model(torch.from_numpy(normalise_rgb(img))[None], torch.from_numpy(ray)[None, None])
        depth = out[0, 0, :hs, :ws].float().numpy()
        return cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def load_own_model(model_dir: str | Path = "") -> OwnMonoModel:
    """The ``mono_unet`` in ``model_dir`` (empty = the shipped one); :class:`MonoModelError` when unusable."""
    from depth_nodes.models import registry
    from depth_nodes.mono import net as _net  # noqa: F401 - registers the mono_unet family
    from depth_nodes.runtime.errors import ModelError

    d = Path(model_dir).expanduser() if str(model_dir) else SHIPPED_DIR
    if not (d / registry.CONFIG_FILE).is_file() or not (d / registry.WEIGHTS_FILE).is_file():
        raise MonoModelError(
            f"monocular model directory {d} lacks {registry.CONFIG_FILE} + {registry.WEIGHTS_FILE} "
            "(train one with `depth-nodes train mono`)"
        )
    try:
        model = registry.load(d)
    except ModelError as exc:
        raise MonoModelError(str(exc)) from None
    if registry.read_config(d)["model"] != "mono_unet":
        raise MonoModelError(f"{d} holds a {registry.read_config(d)['model']!r}, not a mono_unet")
    focal = DEFAULT_FOCAL_PX
    info = d / "train.json"
    if info.is_file():
        focal = float(json.loads(info.read_text()).get("args", {}).get("focal_px", DEFAULT_FOCAL_PX))
    return OwnMonoModel(model, f"mono:{d.name}", focal)
