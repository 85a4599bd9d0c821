"""Building blocks shared by the completion families: plain convolutions, a coarse U-Net, an in-graph prefill.

Everything here is TensorRT-friendly on purpose: Conv / ReLU / MaxPool / AvgPool / Resize (nearest, bilinear) /
Concat / elementwise ops, fixed loop counts, no data-dependent control flow. Depth travels as *normalised
inverse depth* ``inv_n = inv / inv_max`` (``inv_max = 1 / min_depth_m``), so 0..1 covers min_depth_m..inf and
one network serves 5 m and 120 m alike.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Kernel sizes of the in-graph prefill at 1/4 resolution (12..124 px at full resolution): each level fills what
#: is still empty from the nearest (largest inverse depth) return within the kernel, like IP-Basic's dilations
#: of inverted depth.
PREFILL_KERNELS = (3, 7, 15, 31)
#: The full-resolution local fill (between scan lines only): cheap small kernels.
LOCAL_KERNELS = (3, 5, 9)
#: Row-wise (along the scan line) fill of the full-resolution base: 1 x k max filters (reach 1 + 2 = 3 px).
RING_KERNELS = (3, 5)
#: 3x3 box smoothings of the full-resolution base (returns kept exact).
SMOOTH_ITERATIONS = 3
#: Decoders of :class:`UNet`.
DECODERS = ("light", "concat")


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    )


def check_range(min_depth_m: float, max_depth_m: float) -> None:
    if not 0 < min_depth_m < max_depth_m:
        raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {min_depth_m}, {max_depth_m}")


def max_pool_sep(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k max filter (stride 1, same size) as two 1-D pools: O(2k) instead of O(k^2) per pixel."""
    x = F.max_pool2d(x, (1, k), stride=1, padding=(0, k // 2))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(k // 2, 0))


def envelope_clamp(
    inv_n: torch.Tensor, sparse_n: torch.Tensor, valid: torch.Tensor, window_hw: tuple[int, int]
) -> torch.Tensor:
    """``inv_n`` clipped to [min, max] of the returns around it, where they bound it from above and below.

    The window is ``rows x cols`` (odd); a pixel is clamped only when both its upper half (rows y - rows//2
    .. y) and its lower half (y .. y + rows//2) hold returns, and then to the range of both halves' returns:
    an estimate between two scan lines cannot leave the depths the LiDAR measured on them. With returns on
    one side only (above the top ring, below the bottom one, a sparse scan whose next ring is further away)
    the range would be that one line's, i.e. nearest-neighbour fill: those pixels are left alone.
    The safety net of a model seeing another sensor or city (trained on KITTI, the unclamped model
    overshot far surfaces of PandaSet; docs/models.md). Separable max pools on padded inputs plus Min/Max:
    plain Pad/MaxPool/Min/Max in ONNX and TensorRT.
    """
    kh, kw = window_hw
    half = kh // 2

    def row_pool(x):
        return F.max_pool2d(x, (1, kw), stride=1, padding=(0, kw // 2))

    def half_pools(x, fill: float):
        """max over rows y - half .. y and over rows y .. y + half."""
        up = F.max_pool2d(F.pad(x, (0, 0, half, 0), value=fill), (half + 1, 1), stride=1)
        down = F.max_pool2d(F.pad(x, (0, 0, 0, half), value=fill), (half + 1, 1), stride=1)
        return up, down

    hi_up, hi_down = half_pools(row_pool(sparse_n), 0.0)
    neg = row_pool(-(sparse_n + (1.0 - valid) * 2.0))  # holes read -2: below any -inv_n
    lo_up, lo_down = half_pools(neg, -2.0)
    hi = torch.maximum(hi_up, hi_down)
    lo = -torch.maximum(lo_up, lo_down)
    has = ((hi_up > 0) & (hi_down > 0)).to(inv_n.dtype)
    return has * torch.minimum(torch.maximum(inv_n, lo), hi) + (1.0 - has) * inv_n


def prefill(
    inv_n: torch.Tensor, valid: torch.Tensor, kernels: tuple[int, ...] = PREFILL_KERNELS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classical in-graph prefill of sparse normalised inverse depth -> (dense inv_n, its confidence 0..1).

    A cascade of growing max filters (the nearest surface wins, as in IP-Basic's dilation of inverted depth)
    fills each empty pixel from the closest returns; the confidence says at which level it was filled
    (1 = a return, falling with the distance to the nearest return, 0 = still empty: above the top ring).
    Written in plain ops (not OpenCV) so the prefill is part of the ONNX / TensorRT graph.
    """
    fill = inv_n
    filled = valid
    conf = valid
    n = len(kernels)
    for i, k in enumerate(kernels):
        empty = 1.0 - filled
        fill = fill + empty * max_pool_sep(fill, k)
        filled = (fill > 0).to(fill.dtype)
        conf = conf + (filled - (1.0 - empty)) * (1.0 - (i + 1) / (n + 1))
    return fill, conf


def smooth_keep_returns(
    inv_n: torch.Tensor, sparse_n: torch.Tensor, valid: torch.Tensor, iterations: int = SMOOTH_ITERATIONS
) -> torch.Tensor:
    """``iterations`` 3x3 box filters of the full-resolution base, then the returns put back exactly.

    The nearest-return fill between scan lines is blocky; averaging it (but not the returns) cut the RMSE of
    the untrained base on held-out KITTI frames by 15 % (4 frames of frames 35-49: MAE 161 -> 151 mm, RMSE
    1235 -> 1046 mm with 3 iterations; docs/models.md), for three 1-channel poolings.
    """
    for _ in range(iterations):
        inv_n = F.avg_pool2d(inv_n, 3, stride=1, padding=1, count_include_pad=False)
    return valid * sparse_n + (1.0 - valid) * inv_n


def ring_fill(
    inv_n: torch.Tensor, valid: torch.Tensor, kernels: tuple[int, ...] = RING_KERNELS
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fill, mask) of the pixels with a return on their own row within ``max(kernels) // 2`` px.

    On a scan line the nearest return along the line is the best estimate (a spinning LiDAR's returns are
    dense along a ring, the rings far apart); held-out KITTI returns: MAE 323 -> 199 mm against the
    smoothed 2-D fill (4 frames of frames 35-49, 1x5 window; docs/models.md).
    """
    fill, filled = inv_n, valid
    for k in kernels:
        fill = fill + (1.0 - filled) * F.max_pool2d(fill, (1, k), stride=1, padding=(0, k // 2))
        filled = (fill > 0).to(fill.dtype)
    return fill, filled


def down4(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 4)


def sparse_down4(inv_n: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse inverse depth at 1/4 resolution: the mean of the returns in each 4x4 block (normalised conv)."""
    num, den = F.avg_pool2d(inv_n * valid, 4), F.avg_pool2d(valid, 4)
    return num / (den + 1e-6), (den > 0).to(inv_n.dtype)


def nearest_down4(inv_n: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest return of each 4x4 block (max of inverse depth) and whether the block has one."""
    return F.max_pool2d(inv_n, 4), F.max_pool2d(valid, 4)


def up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


class UNet(nn.Module):
    """A plain encoder-decoder (stride-2 convs down, nearest 2x up, skips) -> features.

    ``decoder="light"`` (the default): each level up is a 1x1 conv to the finer width *before* the upsampling,
    the skip added (not concatenated) and one 3x3 conv -- a third of the decoder's multiply-adds of the
    ``"concat"`` decoder (concatenation skip + two 3x3 convs), which the first shipped model used.
    """

    def __init__(self, c_in: int, width: int, levels: int, decoder: str = "light"):
        super().__init__()
        if levels < 1 or width < 1:
            raise ValueError("UNet needs levels >= 1 and width >= 1")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        chans = [width * 2**i for i in range(levels + 1)]
        self.light = decoder == "light"
        self.stem = conv_block(c_in, chans[0])
        self.down = nn.ModuleList(conv_block(chans[i], chans[i + 1], stride=2) for i in range(levels))
        if self.light:
            self.lateral = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 1) for i in reversed(range(levels)))
            self.up = nn.ModuleList(
                nn.Sequential(nn.Conv2d(chans[i], chans[i], 3, padding=1), nn.ReLU(inplace=True))
                for i in reversed(range(levels))
            )
        else:
            self.up = nn.ModuleList(conv_block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(levels)))
        self.out_channels = chans[0]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for down in self.down:
            feats.append(down(feats[-1]))
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        feats = list(feats)
        x = feats.pop()
        for i, up_block in enumerate(self.up):
            if self.light:
                x = F.interpolate(self.lateral[i](x), scale_factor=2.0, mode="nearest")
                x = up_block(x + feats.pop())
            else:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                x = up_block(torch.cat([x, feats.pop()], dim=1))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class InverseDepthModel(nn.Module):
    """Common I/O of the completion families: (image, sparse_inv_depth) -> (depth m, confidence 0..1)."""

    input_names = ("image", "sparse_inv_depth")
    output_names = ("depth", "confidence")

    def __init__(self, min_depth_m: float, max_depth_m: float, stride: int):
        super().__init__()
        check_range(min_depth_m, max_depth_m)
        self.inv_max = 1.0 / float(min_depth_m)
        self.inv_min_n = float(min_depth_m) / float(max_depth_m)
        self.stride = int(stride)

    def normalise(self, sparse_inv_depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inv_n clipped to the model's range, validity mask) of the sparse input."""
        valid = (sparse_inv_depth > 0).to(sparse_inv_depth.dtype)
        inv_n = torch.clamp(sparse_inv_depth * (1.0 / self.inv_max), 0.0, 1.0)
        return inv_n * valid, valid

    def to_depth(self, inv_n: torch.Tensor) -> torch.Tensor:
        return 1.0 / (torch.clamp(inv_n, self.inv_min_n, 1.0) * self.inv_max)
