"""Frame <-> model tensors for the fusion I/O contract (``image`` + ``sparse_inv_depth`` -> ``depth`` + ``confidence``).

One implementation per array kind: numpy for CPU backends (no torch import) and torch for CUDA backends, so
upload, normalisation, inference and cropping stay on the GPU there. H and W are padded (bottom / right) up to
the model's stride and the outputs cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_nodes.runtime.errors import ModelError


@dataclass(frozen=True)
class Normalisation:
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_contract(cls, inputs: dict[str, Any] | None) -> Normalisation:
        n = ((inputs or {}).get("image") or {}).get("normalisation")
        if not n:
            return cls()
        try:
            return cls(float(n["scale"]), tuple(float(v) for v in n["mean"]), tuple(float(v) for v in n["std"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"bad image normalisation in the model metadata: {n!r} ({exc})") from None


def padded_size(h: int, w: int, stride: int) -> tuple[int, int]:
    s = max(1, int(stride))
    return -(-h // s) * s, -(-w // s) * s


def inverse_depth(sparse_m: np.ndarray) -> np.ndarray:
    """1 / depth where depth > 0 (finite), else 0."""
    d = np.asarray(sparse_m, dtype=np.float32)
    out = np.zeros_like(d)
    ok = np.isfinite(d) & (d > 0)
    np.divide(1.0, d, out=out, where=ok)
    return out


def to_inputs_numpy(
    image: np.ndarray, sparse_m: np.ndarray, norm: Normalisation, stride: int, size: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """NCHW float32 model inputs from an H x W x 3 uint8 RGB image and H x W sparse depth (m, 0 = none).

    ``size`` forces the padded (H, W) (a fixed-shape model); by default H/W are padded to ``stride``.
    """
    h, w = sparse_m.shape[:2]
    ph, pw = size or padded_size(h, w, stride)
    if ph < h or pw < w:
        raise ModelError(f"frame {h}x{w} is larger than the model input {ph}x{pw}")
    scale = np.float32(norm.scale)
    mean = np.asarray(norm.mean, np.float32).reshape(3, 1, 1)
    std = np.asarray(norm.std, np.float32).reshape(3, 1, 1)
    img = np.zeros((1, 3, ph, pw), np.float32)
    img[0, :, :h, :w] = np.transpose(image[..., :3], (2, 0, 1))
    if ph > h or pw > w:  # replicate the border so the padding looks like more image, not a black bar
        img[0, :, h:, :w] = img[0, :, h - 1 : h, :w]
        img[0, :, :, w:] = img[0, :, :, w - 1 : w]
    img = (img * scale - mean) / std
    inv = np.zeros((1, 1, ph, pw), np.float32)
    inv[0, 0, :h, :w] = inverse_depth(sparse_m)
    return {"image": img, "sparse_inv_depth": inv}


def to_inputs_torch(image, sparse_m, norm: Normalisation, stride: int, device: str, size=None) -> dict[str, Any]:
    """As :func:`to_inputs_numpy` with torch on ``device``: the uint8 image is uploaded, then normalised there."""
    import torch

    img_u8 = torch.as_tensor(np.ascontiguousarray(image[..., :3])).to(device, non_blocking=True)
    sp = torch.as_tensor(np.ascontiguousarray(sparse_m, dtype=np.float32)).to(device, non_blocking=True)
    h, w = sp.shape
    ph, pw = size or padded_size(h, w, stride)
    img = img_u8.permute(2, 0, 1).unsqueeze(0).float()
    img = torch.nn.functional.pad(img, (0, pw - w, 0, ph - h), mode="replicate") if (ph, pw) != (h, w) else img
    mean = torch.tensor(norm.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=device).view(1, 3, 1, 1)
    img = ((img * norm.scale - mean) / std).contiguous()
    ok = torch.isfinite(sp) & (sp > 0)
    inv = torch.where(ok, 1.0 / torch.where(ok, sp, torch.ones_like(sp)), torch.zeros_like(sp))
    inv = torch.nn.functional.pad(inv.view(1, 1, h, w), (0, pw - w, 0, ph - h)).contiguous()
    return {"image": img, "sparse_inv_depth": inv}


def crop_outputs(outputs: dict[str, Any], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(depth m, confidence) as H x W float32 numpy arrays cropped to the frame (NaN/inf depth -> NaN)."""
    from depth_nodes.runtime.base import to_numpy

    try:
        depth = to_numpy(outputs["depth"])[0, 0, :h, :w].astype(np.float32)
        conf = to_numpy(outputs["confidence"])[0, 0, :h, :w].astype(np.float32)
    except (KeyError, IndexError) as exc:
        raise ModelError(f"model outputs {sorted(outputs)} do not follow the depth/confidence contract: {exc}") from None
    bad = ~np.isfinite(depth) | (depth <= 0)
    if bad.any():
        depth[bad] = np.nan
        conf[bad] = 0.0
    return depth, np.clip(conf, 0.0, 1.0)
