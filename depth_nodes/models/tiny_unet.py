"""A tiny early-fusion U-Net: RGB + sparse inverse depth in, metric depth + confidence out.

TensorRT-friendly on purpose: plain 3x3 convolutions, ReLU, stride-2 convolutions down, nearest 2x upsampling
up, concatenation skips; no custom ops and no data-dependent control flow, so it exports to ONNX with dynamic
H/W (multiples of :attr:`TinyFusionUNet.stride`) and builds on TensorRT 10.x and 11.x alike.

Depth is predicted in inverse depth so one network serves near and far: ``inv = inv_min + sigmoid(x) *
(inv_max - inv_min)`` with ``inv_min = 1 / max_depth_m`` and ``inv_max = 1 / min_depth_m``; ``depth_m = 1 / inv``.
The sparse input is inverse depth (1/m, 0 = no return), so an untrained prior and a trained model see the same
scale at 5 m and at 120 m.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class TinyFusionUNet(nn.Module):
    """Inputs ``image`` (B x 3 x H x W, normalised RGB) and ``sparse_inv_depth`` (B x 1 x H x W, 1/m, 0 = none).

    Outputs ``depth`` (B x 1 x H x W, metres) and ``confidence`` (B x 1 x H x W, 0..1).
    """

    input_names = ("image", "sparse_inv_depth")
    output_names = ("depth", "confidence")

    def __init__(self, width: int = 16, levels: int = 3, min_depth_m: float = 1.0, max_depth_m: float = 120.0):
        super().__init__()
        if levels < 1 or width < 1:
            raise ValueError("TinyFusionUNet needs levels >= 1 and width >= 1")
        if not 0 < min_depth_m < max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {min_depth_m}, {max_depth_m}")
        self.levels = int(levels)
        self.stride = 2**self.levels
        self.inv_min = 1.0 / float(max_depth_m)
        self.inv_max = 1.0 / float(min_depth_m)
        chans = [width * 2**i for i in range(levels + 1)]
        # image (3) + sparse inverse depth (1) + validity mask (1), all early-fused
        self.stem = _block(5, chans[0])
        self.down = nn.ModuleList(_block(chans[i], chans[i + 1], stride=2) for i in range(levels))
        self.up = nn.ModuleList(_block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(chans[0], 2, 3, padding=1)

    def forward(self, image: torch.Tensor, sparse_inv_depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        valid = (sparse_inv_depth > 0).to(sparse_inv_depth.dtype)
        # scale the sparse input to ~0..1 over the model's range so it weighs like the image channels
        sparse_n = sparse_inv_depth * (1.0 / self.inv_max)
        x = self.stem(torch.cat([image, sparse_n, valid], dim=1))
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()
        for up in self.up:
            x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
            x = up(torch.cat([x, skips.pop()], dim=1))
        out = self.head(x)
        inv = self.inv_min + torch.sigmoid(out[:, :1]) * (self.inv_max - self.inv_min)
        return 1.0 / inv, torch.sigmoid(out[:, 1:2])
