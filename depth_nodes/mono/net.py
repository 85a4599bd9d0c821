"""Our own small monocular network (``mono_unet``): RGB + each pixel's ray elevation in, metric depth out.

A plain U-Net (3x3 convolutions, stride-2 down, nearest 2x up, concatenation skips: exports to ONNX with
dynamic H/W and builds on TensorRT like ``tiny_unet``). The extra input channel is the ray's vertical
direction ``(v - cy) / fy`` from the camera intrinsics: a road scene's depth is dominated by where the
horizon is and how steeply the ground falls away, which RGB alone cannot tell a small network across
cameras; with K as an input the same weights serve a different focal length or crop. Depth is predicted
in inverse depth, ``inv = inv_min + sigmoid(x) * (inv_max - inv_min)``, like ``tiny_unet``.
"""

from __future__ import annotations

import torch
from torch import nn

from depth_nodes.models.registry import IMAGENET_MEAN, IMAGENET_STD, Family, register
from depth_nodes.mono import feed as _feed


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class MonoUNet(nn.Module):
    """Inputs ``image`` (B x 3 x H x W, ImageNet-normalised RGB) and ``ray_elevation`` (B x 1 x H x W,
    ``(v - cy) / fy``). Output ``depth`` (B x 1 x H x W, m). H, W multiples of :attr:`stride`."""

    input_names = ("image", "ray_elevation")
    output_names = ("depth",)

    def __init__(
        self, width: int = 16, levels: int = 4, min_depth_m: float = 1.0, max_depth_m: float = 120.0
    ):
        super().__init__()
        if levels < 1 or width < 1:
            raise ValueError("MonoUNet needs levels >= 1 and width >= 1")
        if not 0 < min_depth_m < max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {min_depth_m}, {max_depth_m}")
        self.levels = int(levels)
        self.stride = 2**self.levels
        self.inv_min = 1.0 / float(max_depth_m)
        self.inv_max = 1.0 / float(min_depth_m)
        chans = [width * 2 ** min(i, 3) for i in range(levels + 1)]
        self.stem = _block(4, chans[0])
        self.down = nn.ModuleList(_block(chans[i], chans[i + 1], stride=2) for i in range(levels))
        self.up = nn.ModuleList(
            _block(chans[i + 1] + chans[i] + 1, chans[i]) for i in reversed(range(levels))
        )
        self.head = nn.Conv2d(chans[0], 1, 3, padding=1)

    def forward(self, image: torch.Tensor, ray_elevation: torch.Tensor) -> torch.Tensor:
        x = self.stem(torch.cat([image, ray_elevation], dim=1))
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()
        for up in self.up:
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
            skip = skips.pop()
            ray = nn.functional.interpolate(ray_elevation, size=skip.shape[-2:], mode="nearest")
            x = up(torch.cat([x, skip, ray], dim=1))
        inv = self.inv_min + torch.sigmoid(self.head(x)) * (self.inv_max - self.inv_min)
        return 1.0 / inv


MONO_UNET = register(
    Family(
        name="mono_unet",
        builder="depth_nodes.mono.net:MonoUNet",
        defaults={"width": 16, "levels": 4, "min_depth_m": 1.0, "max_depth_m": 120.0},
        description="small monocular U-Net (RGB + ray elevation -> metric depth), trained from the robot's LiDAR",
        inputs={
            "image": {
                "layout": "NCHW",
                "units": "RGB / 255, then (x - mean) / std",
                "normalisation": {
                    "scale": 1.0 / 255.0,
                    "mean": list(IMAGENET_MEAN),
                    "std": list(IMAGENET_STD),
                },
            },
            "ray_elevation": {"layout": "NCHW", "units": "(v - cy) / fy of each pixel centre"},
        },
        outputs={"depth": {"layout": "NCHW", "units": "m"}},
    )
)

# The inputs' numpy builders live in the torch-free ``feed`` (the ONNX Runtime path uses them); kept here too.
ray_elevation = _feed.ray_elevation
normalise_rgb = _feed.normalise_rgb
