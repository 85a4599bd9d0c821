"""Building blocks of ENet / PENet (Hu et al., ICRA 2021), written here from the paper and the authors' MIT code.

The module names and parameter shapes equal those of the official ``basic.py`` (JUGGHM/PENet_ICRA2021 @ ee4318a),
so an official ``state_dict()`` loads unchanged; the maths is the same, written for export: the official
``CSPNAccelerate`` gathers neighbours with ``F.unfold`` and writes the centre in place, here the neighbours come
from a ``conv2d`` with fixed one-hot kernels (exact: each output is ``1 * x`` plus zeros) and the centre is
concatenated, so ONNX / TensorRT see Conv, Concat, Mul and ReduceSum only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def convbnrelu(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def deconvbnrelu(c_in: int, c_out: int, kernel_size: int = 5, stride: int = 2, padding: int = 2,
                 output_padding: int = 1) -> nn.Sequential:  # fmt: skip
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel_size, stride=stride, padding=padding, output_padding=output_padding,
                           bias=False),  # fmt: skip
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def convbn(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False), nn.BatchNorm2d(c_out)
    )


class BasicBlockGeo(nn.Module):
    """ResNet basic block whose two convolutions also see the geometry (x, y, z) planes of their resolution."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, geoplanes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes + geoplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes + geoplanes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes + geoplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        identity = x
        x = torch.cat((x, g1), 1)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(torch.cat((g2, out), 1)))
        if self.downsample is not None:
            identity = self.downsample(x)
        return F.relu(out + identity)


LARGE_DEPTH_M = 600.0  # the official SparseDownSampleClose's "large number"


def sparse_downsample_close(d: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 pooling of sparse depth keeping the *nearest* return (official ``SparseDownSampleClose(2)``)."""
    encoded = -(1 - mask) * LARGE_DEPTH_M - d
    d = -F.max_pool2d(encoded, 2, 2)
    mask_s = F.max_pool2d(mask, 2, 2)
    return d - (1 - mask_s) * LARGE_DEPTH_M, mask_s


def geometry_planes(z, vnorm, unorm, h, w, cy, cx, fy, fx) -> torch.Tensor:
    """Official ``GeometryFeature`` (its names swapped: "x" is along rows, "y" along columns); ``h``/``w`` are the
    size the position map was normalised over at this scale (the official code hard-codes 352 / 2^k, 1216 / 2^k)."""
    x = z * (0.5 * h * (vnorm + 1) - cy) / fy
    y = z * (0.5 * w * (unorm + 1) - cx) / fx
    return torch.cat((x, y, z), 1)


class CSPNGenerateAccelerate(nn.Module):
    """Per-pixel affinities (k*k - 1 learned, normalised by their absolute sum) plus the centre weight."""

    def __init__(self, in_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.generate = convbn(in_channels, kernel_size * kernel_size - 1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        guide = self.generate(feature)
        guide = guide / torch.sum(guide.abs(), dim=1).unsqueeze(1)
        guide_mid = (1 - torch.sum(guide, dim=1)).unsqueeze(1)
        half = (self.kernel_size * self.kernel_size - 1) // 2
        return torch.cat((guide[:, :half], guide_mid, guide[:, half:]), dim=1)


def one_hot_kernels(ks: int) -> torch.Tensor:
    """The official fixed ``encoder{ks}`` (ks*ks, ks*ks, ks, ks): output channel ``o`` takes input channel
    ``ks*ks - 1 - o`` at the mirrored tap, which turns per-pixel affinities into per-neighbour ones."""
    n = ks * ks
    enc = torch.zeros(n, n, ks, ks)
    rev = list(range(ks - 1, -1, -1))
    rows = [r for r in rev for _ in range(ks)]
    cols = rev * ks
    enc[list(range(n - 1, -1, -1)), list(range(n)), rows, cols] = 1
    return enc


def kernel_trans(kernel: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    ks = weight.shape[-1]
    return F.conv2d(kernel, weight, stride=1, padding=(ks - 1) // 2)


class CSPNAccelerate(nn.Module):
    """One CSPN++ step: ``sum_j kernel_j * neighbour_j(depth)`` with the centre taken from ``depth0``.

    The official code gathers neighbours with ``F.unfold``; here a fixed one-hot ``conv2d`` does (made in the
    forward pass, a constant of the exported graph: no buffer, so the state_dict stays the official one)."""

    def __init__(self, kernel_size: int, dilation: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.padding = kernel_size, dilation, padding

    def forward(self, kernel: torch.Tensor, depth: torch.Tensor, depth0: torch.Tensor) -> torch.Tensor:
        mid = (self.kernel_size * self.kernel_size - 1) // 2
        n, k = self.kernel_size * self.kernel_size, self.kernel_size
        taps = torch.eye(n, device=depth.device, dtype=depth.dtype).reshape(n, 1, k, k)  # channel j = unfold's tap j
        shifted = F.conv2d(depth, taps, padding=self.padding, dilation=self.dilation)
        shifted = torch.cat((shifted[:, :mid], depth0, shifted[:, mid + 1 :]), dim=1)
        return torch.sum(kernel * shifted, dim=1, keepdim=True)
