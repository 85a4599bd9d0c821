"""The own monocular net (``mono_unet``) as a predictor: load (shipped weights by default), resize, infer.

Frames are resized so the focal length is the one the net was trained at (``focal_px`` in its ``train.json``,
360 px: KITTI at half resolution), padded to the net's stride, and the depth is resized back.
Backend (``auto``): ONNX Runtime (CPU) on the directory's ``model.onnx`` when onnxruntime is importable and the
file is there (shipped for the own net; ``python3 -m depth_nodes.mono.export DIR --out DIR/model.onnx`` makes
one), else torch on ``model.safetensors``; neither importable -> :class:`MonoModelError` naming ``[ml]``.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.core.scale_fit import METRIC
from depth_nodes.mono.hf import MonoModelError

#: The shipped net: package data (config.json + model.safetensors + train.json).
SHIPPED_DIR = Path(__file__).parent / "weights" / "mono_unet"
DEFAULT_FOCAL_PX = 360.0
ONNX_FILE = "model.onnx"
ML_HINT = "install depth_nodes[ml] (torch or onnxruntime)"


@dataclass
class OwnMonoModel:
    model: (
        object  # torch.nn.Module (MonoUNet), or an onnxruntime.InferenceSession when backend == "onnxruntime"
    )
    name: str
    focal_px: float = DEFAULT_FOCAL_PX
    kind: str = METRIC
    prompted: bool = False
    backend: str = "torch"
    stride: int = 16

    def predict(self, rgb: np.ndarray, K: np.ndarray) -> np.ndarray:
        """Metric depth (m, H x W float32) of ``rgb`` with intrinsics ``K`` (before the scale fit)."""
        from depth_nodes.mono.feed import normalise_rgb, ray_elevation

        h, w = rgb.shape[:2]
        s = self.focal_px / float(K[1, 1])
        stride = int(self.stride)
        hs, ws = max(stride, round(h * s)), max(stride, round(w * s))
        small = cv2.resize(rgb, (ws, hs), interpolation=cv2.INTER_AREA)
        Ks = np.asarray(K, np.float64).copy()
        Ks[0] *= ws / w
        Ks[1] *= hs / h
        ph, pw = -hs % stride, -ws % stride
        img = np.pad(small, ((0, ph), (0, pw), (0, 0)), mode="edge")
        ray = ray_elevation(hs + ph, ws + pw, Ks)
        image, ray = normalise_rgb(img)[None], ray[None, None]
        if self.backend == "onnxruntime":
            out = self.model.run(None, {"image": image, "ray_elevation": ray})[0]
        else:
            import torch

            with torch.inference_mode():
                out = self.model(torch.from_numpy(image), torch.from_numpy(ray)).float().numpy()
        depth = np.asarray(out[0, 0, :hs, :ws], np.float32)
        return cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)

    def torch_forward(self, image, K: np.ndarray):
        """:meth:`predict` in torch on a 1 x 3 x H x W RGB tensor in [0, 1] (gradients reach the pixels, for
        PGD): area resize to the training focal length, edge pad, ImageNet normalisation, net, bilinear
        resize back. Returns 1 x 1 x H x W metric depth."""
        import torch
        from torch.nn import functional as F

        from depth_nodes.models.registry import IMAGENET_MEAN, IMAGENET_STD
        from depth_nodes.mono.feed import ray_elevation

        if self.backend != "torch":
            raise MonoModelError(f"torch_forward needs the torch backend, not {self.backend!r}")
        h, w = image.shape[-2:]
        s = self.focal_px / float(K[1, 1])
        stride = int(self.stride)
        hs, ws = max(stride, round(h * s)), max(stride, round(w * s))
        small = F.interpolate(image.float().reshape(1, 3, h, w), size=(hs, ws), mode="area")
        Ks = np.asarray(K, np.float64).copy()
        Ks[0] *= ws / w
        Ks[1] *= hs / h
        ph, pw = -hs % stride, -ws % stride
        img = F.pad(small, (0, pw, 0, ph), mode="replicate") if ph or pw else small
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        ray = torch.from_numpy(ray_elevation(hs + ph, ws + pw, Ks))[None, None]
        out = self.model((img - mean) / std, ray)[:, :, :hs, :ws]
        return F.interpolate(out.float(), size=(h, w), mode="bilinear", align_corners=False)


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def load_own_model(model_dir: str | Path = "", backend: str = "torch") -> OwnMonoModel:
    """The ``mono_unet`` in ``model_dir`` (empty = the shipped one); :class:`MonoModelError` when unusable.

    ``backend``: ``torch`` (trainers, export), ``onnxruntime``, or ``auto`` (the node: see the module docstring).
    """
    from depth_nodes.models import registry
    from depth_nodes.runtime.errors import ModelError

    d = Path(model_dir).expanduser() if str(model_dir) else SHIPPED_DIR
    if not (d / registry.CONFIG_FILE).is_file() or not (d / registry.WEIGHTS_FILE).is_file():
        raise MonoModelError(
            f"monocular model directory {d} lacks {registry.CONFIG_FILE} + {registry.WEIGHTS_FILE} "
            "(train one with `depth-nodes train mono`)"
        )
    try:
        cfg = registry.read_config(d)
    except ModelError as exc:
        raise MonoModelError(str(exc)) from None
    if cfg["model"] != "mono_unet":
        raise MonoModelError(f"{d} holds a {cfg['model']!r}, not a mono_unet")
    focal = DEFAULT_FOCAL_PX
    info = d / "train.json"
    if info.is_file():
        focal = float(json.loads(info.read_text()).get("args", {}).get("focal_px", DEFAULT_FOCAL_PX))
    stride = 2 ** int(cfg.get("params", {}).get("levels", 4))
    if backend == "auto":
        if _importable("onnxruntime") and (d / ONNX_FILE).is_file():
            backend = "onnxruntime"
        elif _importable("torch"):
            backend = "torch"
        else:
            why = (
                "onnxruntime and torch are not importable"
                if not _importable("onnxruntime")
                else (f"torch is not importable and {d} has no {ONNX_FILE}")
            )
            raise MonoModelError(f"{why}: {ML_HINT}")
    if backend == "onnxruntime":
        import onnxruntime as ort

        try:
            sess = ort.InferenceSession(str(d / ONNX_FILE), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise MonoModelError(f"{d / ONNX_FILE} does not load in ONNX Runtime: {exc}") from None
        return OwnMonoModel(sess, f"mono:{d.name}", focal, backend="onnxruntime", stride=stride)
    try:
        from depth_nodes.mono import net as _net  # noqa: F401 - registers the mono_unet family (imports torch)

        model = registry.load(d)
    except ModelError as exc:
        raise MonoModelError(str(exc)) from None
    except ImportError as exc:
        raise MonoModelError(f"{exc}: {ML_HINT}") from None
    return OwnMonoModel(model, f"mono:{d.name}", focal, stride=int(model.stride))
