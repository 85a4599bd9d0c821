"""PENet (the released ``PENet_C2``, dilation 2): ENet + two-scale CSPN++ refinement. Own code, official maths.

Keys, shapes and forward maths equal the official ``PENet_C2(args)`` (``network_model='pe'``,
``dilation_rate=2``, ``'xyz'``; JUGGHM/PENet_ICRA2021 @ ee4318a, MIT): ENet under ``backbone.``, the fixed one-hot
``encoder3/5/7`` kept as (frozen) parameters, 6 CSPN++ iterations at dilation 2 on half-resolution affinities
(nearest-upsampled), then 6 at full resolution, each step re-injecting the LiDAR returns through a learned mask.
Inputs, outputs and the geometry modes as :mod:`depth_nodes.models.enet`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_nodes.models.enet import KITTI_HW, CameraContract, ENetCore
from depth_nodes.models.penet_blocks import (
    CSPNAccelerate,
    CSPNGenerateAccelerate,
    convbn,
    kernel_trans,
    one_hot_kernels,
    sparse_downsample_close,
)

ITERATIONS = 6  # per scale, as released
KERNELS = (3, 5, 7)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class PENet(CameraContract):
    """PENet_C2 as a registry family (``penet``)."""

    def __init__(self, geometry: str = "image", fx_px: float = 721.5377, fy_px: float = 721.5377,
                 cx_px: float = 596.5593, cy_px: float = 149.854, cy_offset_px: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        # attribute order = the official state_dict order (own parameters first, then submodules)
        for ks in KERNELS:
            setattr(self, f"encoder{ks}", nn.Parameter(one_hot_kernels(ks), requires_grad=False))
        self.backbone = ENetCore()
        self.kernel_conf_layer = convbn(64, 3)
        self.mask_layer = convbn(64, 1)
        for ks in KERNELS:
            setattr(self, f"iter_guide_layer{ks}", CSPNGenerateAccelerate(64, ks))
        self.kernel_conf_layer_s2 = convbn(128, 3)
        self.mask_layer_s2 = convbn(128, 1)
        for ks in KERNELS:
            setattr(self, f"iter_guide_layer{ks}_s2", CSPNGenerateAccelerate(128, ks))
        for ks in KERNELS:
            setattr(self, f"CSPN{ks}", CSPNAccelerate(ks, dilation=1, padding=(ks - 1) // 2))
            setattr(self, f"CSPN{ks}_s2", CSPNAccelerate(ks, dilation=2, padding=ks - 1))
        self._setup(geometry, fx_px, fy_px, cx_px, cy_px, cy_offset_px)

    def official(self, rgb, d, position, K, hw=KITTI_HW) -> torch.Tensor:
        """The refined depth exactly as the official ``PENet_C2.forward`` (``hw`` = its hard-coded 352, 1216)."""
        valid = torch.where(d > 0, torch.ones_like(d), torch.zeros_like(d))
        f = self.backbone.features(rgb, d, position, K, hw)
        coarse = f["output"]
        fs1, fs2 = f["feature_s1"], f["feature_s2"]

        d_s2, valid_s2 = sparse_downsample_close(d, valid)
        mask_s2 = _up2(torch.sigmoid(self.mask_layer_s2(fs2)) * valid_s2)
        conf_s2 = torch.softmax(self.kernel_conf_layer_s2(fs2), dim=1)
        depth_s2 = _up2(d_s2)
        mask = torch.sigmoid(self.mask_layer(fs1)) * valid
        conf = torch.softmax(self.kernel_conf_layer(fs1), dim=1)

        # half resolution: affinities made at 1/2, turned per-neighbour, upsampled; dilation-2 steps at full size
        out_s2 = 0
        for j, ks in enumerate(KERNELS):
            enc = getattr(self, f"encoder{ks}")
            guide = _up2(kernel_trans(getattr(self, f"iter_guide_layer{ks}_s2")(fs2), enc))
            cspn = getattr(self, f"CSPN{ks}_s2")
            x = coarse
            for _ in range(ITERATIONS):
                x = cspn(guide, x, coarse)
                x = mask_s2 * depth_s2 + (1 - mask_s2) * x
            out_s2 = out_s2 + _up2(conf_s2[:, j : j + 1]) * x

        out = 0
        for j, ks in enumerate(KERNELS):
            guide = kernel_trans(getattr(self, f"iter_guide_layer{ks}")(fs1), getattr(self, f"encoder{ks}"))
            cspn = getattr(self, f"CSPN{ks}")
            x = out_s2
            for _ in range(ITERATIONS):
                x = cspn(guide, x, out_s2)
                x = mask * d + (1 - mask) * x
            out = out + conf[:, j : j + 1] * x
        return out

    def forward(self, image: torch.Tensor, sparse_inv_depth: torch.Tensor):
        depth = self.official(*self.camera_inputs(image, sparse_inv_depth))
        return depth, self.confidence(depth)
