"""Depth Anything's image pre-processing in torch on the model's device, equal to transformers' own processor.

The released Depth Anything V2 directories name ``DPTImageProcessor`` in ``preprocessor_config.json``: resize
with ``keep_aspect_ratio`` (the side whose scale is *closer to 1* decides, so a landscape KITTI frame gets height
518 and a portrait camera width 518) and ``ensure_multiple_of: 14`` (each side rounded to a multiple of 14),
bicubic (PIL), rescale by 1/255, normalise with the ImageNet mean / std. :func:`resize_size` is that rule, copied
from ``transformers.models.dpt`` (its module-level function is private API, so it is restated here and tested
against the processor); :func:`preprocess_torch` does the resize on the device.

Why our own: the processor runs on the CPU (PIL or torchvision), per frame ~100 ms at KITTI size on this CPU,
and needs a host round trip on a GPU. PIL's bicubic resize is separable, horizontal pass first, with the
intermediate image rounded to uint8; ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` uses
PIL's kernel (a = -0.5, widened when shrinking), so two passes with the same rounding match the processor to one
grey level on < 1 % of the pixels (PIL's fixed-point arithmetic), tested in ``test/test_mono_da_v2.py``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_nodes.errors import DepthNodesError
from depth_nodes.models.registry import IMAGENET_MEAN, IMAGENET_STD

PROCESSOR_FILE = "preprocessor_config.json"
PIL_BICUBIC = 3


class ProcessorConfigError(DepthNodesError):
    """``preprocessor_config.json`` asks for something this pre-processing does not do."""


@dataclass(frozen=True)
class ProcessorSpec:
    """The fields of ``DPTImageProcessor`` that Depth Anything uses (defaults: the released DA-V2 files)."""

    size_hw: tuple[int, int] = (518, 518)
    multiple: int = 14
    keep_aspect_ratio: bool = True
    rescale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = tuple(IMAGENET_MEAN)
    std: tuple[float, float, float] = tuple(IMAGENET_STD)

    @classmethod
    def from_dir(cls, model_dir: str | Path, size_px: int = 0) -> ProcessorSpec:
        """The directory's ``preprocessor_config.json`` (defaults when absent); ``size_px`` > 0 overrides its size."""
        path = Path(model_dir).expanduser() / PROCESSOR_FILE
        raw: dict = {}
        if path.is_file():
            try:
                raw = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ProcessorConfigError(f"{path} is unreadable: {exc}") from None
        return cls.from_dict(raw, size_px, str(path))

    @classmethod
    def from_dict(cls, raw: dict, size_px: int = 0, where: str = PROCESSOR_FILE) -> ProcessorSpec:
        d = cls()
        for key, ok in (("do_resize", True), ("do_rescale", True), ("do_normalize", True), ("do_pad", False)):
            if key in raw and bool(raw[key]) != ok:
                raise ProcessorConfigError(f"{where}: {key}={raw[key]!r} is not supported (Depth Anything uses {ok})")
        if raw.get("resample", PIL_BICUBIC) != PIL_BICUBIC:
            raise ProcessorConfigError(f"{where}: resample={raw['resample']!r} is not supported (bicubic = 3 only)")
        size = raw.get("size", {"height": d.size_hw[0], "width": d.size_hw[1]})
        try:
            hw = (int(size["height"]), int(size["width"]))
            spec = cls(
                (size_px, size_px) if size_px > 0 else hw,
                int(raw.get("ensure_multiple_of", d.multiple)),
                bool(raw.get("keep_aspect_ratio", d.keep_aspect_ratio)),
                float(raw.get("rescale_factor", d.rescale)),
                tuple(float(v) for v in raw.get("image_mean", d.mean)),
                tuple(float(v) for v in raw.get("image_std", d.std)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProcessorConfigError(f"{where}: bad field ({type(exc).__name__}: {exc}); size needs height and "
                                       "width, image_mean / image_std three numbers") from None  # fmt: skip
        if len(spec.mean) != 3 or len(spec.std) != 3 or min(spec.std) <= 0 or spec.multiple < 1 or min(spec.size_hw) < 1:
            raise ProcessorConfigError(f"{where}: image_mean / image_std need 3 values (std > 0), "
                                       f"ensure_multiple_of and size >= 1: {spec}")  # fmt: skip
        return spec


def _constrain(val: float, multiple: int) -> int:
    """transformers' ``constrain_to_multiple_of`` (min_val 0, no max)."""
    x = round(val / multiple) * multiple
    return int(math.ceil(val / multiple) * multiple) if x < 0 else int(x)


def resize_size(h: int, w: int, spec: ProcessorSpec) -> tuple[int, int]:
    """(H, W) the processor resizes an ``h x w`` image to (see the module docstring)."""
    sh, sw = spec.size_hw[0] / h, spec.size_hw[1] / w
    if spec.keep_aspect_ratio:
        if abs(1 - sw) < abs(1 - sh):
            sh = sw
        else:
            sw = sh
    hh, ww = _constrain(sh * h, spec.multiple), _constrain(sw * w, spec.multiple)
    if hh < 1 or ww < 1:
        raise ProcessorConfigError(f"a {h}x{w} image resizes to {hh}x{ww} under {spec}: nothing left to run")
    return hh, ww


def preprocess_torch(rgb: np.ndarray, spec: ProcessorSpec, device: str):
    """1 x 3 x H x W float32 ``pixel_values`` on ``device`` from an H x W x 3 uint8 RGB image (upload first)."""
    import torch
    import torch.nn.functional as F

    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ProcessorConfigError(f"expected an H x W x 3 RGB image, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    hh, ww = resize_size(h, w, spec)
    x = torch.as_tensor(np.ascontiguousarray(rgb[..., :3])).to(device)
    x = x.permute(2, 0, 1).unsqueeze(0).float()
    if ww != w:  # PIL: horizontal pass first, the intermediate image rounded to 8 bits
        x = F.interpolate(x, size=(h, ww), mode="bicubic", antialias=True, align_corners=False).round_().clamp_(0, 255)
    if hh != h:
        x = F.interpolate(x, size=(hh, ww), mode="bicubic", antialias=True, align_corners=False).round_().clamp_(0, 255)
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return ((x * spec.rescale - mean) / std).contiguous()


def upsample_torch(pred, hw: tuple[int, int]):
    """H x W prediction at the camera's size from the model's ``1 x h x w`` (or ``1 x 1 x h x w``) output.

    Bilinear, not the bicubic of transformers' ``post_process_depth_estimation``: bicubic overshoots at depth
    edges (negative or beyond-range depth next to the sky), bilinear stays within its neighbours."""
    import torch.nn.functional as F

    p = pred.reshape(1, 1, pred.shape[-2], pred.shape[-1]).float()
    if tuple(p.shape[-2:]) != tuple(hw):
        p = F.interpolate(p, size=tuple(hw), mode="bilinear", align_corners=False)
    return p[0, 0]
