"""The survey's completion families on one I/O contract: (image, sparse_inv_depth) -> (depth m, confidence).

All of them do the heavy work at 1/4 resolution (a KITTI frame is 88 x 304 there, so a CPU keeps up) and end in
one light full-resolution head that sees the image and the returns again, so edges stay sharp:

- :class:`Unguided` -- sparsity-invariant (normalised) convolutions on the sparse depth alone (Uhrig et al. 2017);
- :class:`EarlyFusion` -- image + sparse depth concatenated into one encoder-decoder;
- :class:`LateFusion` -- an image encoder and a depth encoder, fused level by level in the decoder (the image
  gates the depth features, guided-convolution style);
- :class:`Residual` -- refines a classical prefill: image + sparse + prefill + its confidence in, a residual in
  inverse depth + confidence out. The prefill (:func:`blocks.prefill`) runs inside the graph.

:mod:`depth_nodes.models.propagation` adds the CSPN++/NLSPN-style head on top of :class:`Residual`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from depth_nodes.models.blocks import (
    LOCAL_KERNELS,
    InverseDepthModel,
    UNet,
    conv_block,
    down4,
    envelope_clamp,
    nearest_down4,
    prefill,
    ring_fill,
    smooth_keep_returns,
    sparse_down4,
    up,
)

#: Coarse features passed up to the full-resolution head.
HEAD_FEATURES = 2


class FullResHead(nn.Module):
    """Two 3x3 convs at full resolution: [image, base inv, sharp inv, coarse inv, valid, coarse features] ->
    (base inv + delta, conf, ``extra`` channels the family uses at full res, e.g. the gate of ``learned``)."""

    def __init__(self, hidden: int = 8, features: int = HEAD_FEATURES, extra: int = 0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(7 + features, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 2 + extra, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, image, inv_n, sharp_n, coarse_n, valid, feats):
        out = self.net(torch.cat([image, inv_n, sharp_n, coarse_n, valid, feats], dim=1))
        return inv_n + 0.05 * out[:, :1], out[:, 1:2], out[:, 2:]


class CoarseBase(InverseDepthModel):
    """A 1/4-resolution body, then the full-res head.

    :meth:`coarse` returns ``2 + HEAD_FEATURES`` channels at 1/4 resolution: absolute normalised inverse
    depth, a confidence logit and the features passed up to the head. The body's conv outputs
    ``n_out = 2 + extra_outputs + HEAD_FEATURES`` channels (``extra_outputs``: what a family consumes at 1/4
    resolution, e.g. the affinities of ``learned``); ``head_extra`` more channels come out of the full-res head.
    """

    extra_outputs = 0
    head_extra = 0

    def __init__(
        self, width: int, levels: int, head_hidden: int, min_depth_m: float, max_depth_m: float, clamp_px=0
    ):
        super().__init__(min_depth_m, max_depth_m, stride=4 * 2**int(levels))
        self.head = FullResHead(head_hidden, extra=self.head_extra)
        self.n_out = 2 + self.extra_outputs + HEAD_FEATURES
        hw = [clamp_px, clamp_px] if isinstance(clamp_px, int) else list(clamp_px)
        if hw != [0, 0] and (len(hw) != 2 or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in hw)):
            raise ValueError(f"clamp_px must be 0 (off), an odd window size or [rows, cols] odd, got {clamp_px}")
        self.clamp_hw = None if hw == [0, 0] else (hw[0], hw[1])

    def clamp(self, inv_n, sparse_n, valid):
        """The final estimate within the range of the returns around it (``clamp_px`` window; 0 = off)."""
        return inv_n if self.clamp_hw is None else envelope_clamp(inv_n, sparse_n, valid, self.clamp_hw)

    def coarse(self, image, sparse_n, valid) -> torch.Tensor:
        """1/4-res [inv_n, confidence logit, HEAD_FEATURES features]."""
        raise NotImplementedError

    def core(self, image, sparse_inv_depth):
        """(inv_n, confidence logit, head extra channels, sparse_n, valid) at full resolution.

        Near returns the local fill (nearest return within a few pixels) is the sharp base, elsewhere the
        upsampled coarse estimate; :func:`blocks.smooth_keep_returns` smooths it (returns kept) and on the scan
        lines :func:`blocks.ring_fill` (the nearest return along the line, within 3 px) replaces it; the head then corrects
        this base from the image, the sharp base and the coarse estimate. Only the
        2 + HEAD_FEATURES coarse channels are upsampled (full-resolution tensors dominate the CPU time).
        """
        sparse_n, valid = self.normalise(sparse_inv_depth)
        out_up = up(self.coarse(image, sparse_n, valid), 4)
        local, local_conf = prefill(sparse_n, valid, LOCAL_KERNELS)
        near = (local_conf > 0).to(local.dtype)
        sharp = near * local + (1.0 - near) * out_up[:, :1]
        ring, on_ring = ring_fill(sparse_n, valid)
        base = on_ring * ring + (1.0 - on_ring) * smooth_keep_returns(sharp, sparse_n, valid)
        inv_n, conf_logit, extra = self.head(image, base, sharp, out_up[:, :1], valid, out_up[:, 2:])
        return inv_n, out_up[:, 1:2] + conf_logit, extra, sparse_n, valid

    def forward(self, image: torch.Tensor, sparse_inv_depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv_n, conf_logit, _, sparse_n, valid = self.core(image, sparse_inv_depth)
        return self.to_depth(self.clamp(inv_n, sparse_n, valid)), torch.sigmoid(conf_logit)


def _absolute(out: torch.Tensor) -> torch.Tensor:
    """Absolute inverse depth: a sigmoid over the model's range, started near the mean of the returns."""
    return torch.cat([torch.sigmoid(out[:, :1] - 3.0), out[:, 1:]], dim=1)


class _UNetBody(CoarseBase):
    """A U-Net on ``c_in`` 1/4-resolution channels predicting absolute inverse depth unless overridden."""

    c_in = 5

    def __init__(
        self, width=16, levels=3, head_hidden=8, min_depth_m=1.0, max_depth_m=120.0, decoder="light", clamp_px=0
    ):
        super().__init__(width, levels, head_hidden, min_depth_m, max_depth_m, clamp_px)
        self.unet = UNet(self.c_in, width, levels, decoder)
        self.out = nn.Conv2d(self.unet.out_channels, self.n_out, 3, padding=1)

    def coarse(self, image, sparse_n, valid):
        s4, v4 = sparse_down4(sparse_n, valid)
        return _absolute(self.out(self.unet(torch.cat([down4(image), s4, v4], dim=1))))


class EarlyFusion(_UNetBody):
    """Image + sparse inverse depth + validity, concatenated at the input of one U-Net."""


class LateFusion(_UNetBody):
    """Two encoders (image; sparse depth + validity) fused in the decoder: depth features gated by the image."""

    def __init__(
        self, width=16, levels=3, head_hidden=8, min_depth_m=1.0, max_depth_m=120.0, decoder="light", clamp_px=0
    ):
        super().__init__(width, levels, head_hidden, min_depth_m, max_depth_m, decoder, clamp_px)
        self.unet = UNet(3, width, levels, decoder)  # image branch (its decoder is the shared decoder)
        self.depth_enc = UNet(2, width, levels, decoder)  # depth branch (encoder only is used)
        self.depth_enc.up = nn.ModuleList()
        if hasattr(self.depth_enc, "lateral"):
            self.depth_enc.lateral = nn.ModuleList()

    def coarse(self, image, sparse_n, valid):
        s4, v4 = sparse_down4(sparse_n, valid)
        img_f = self.unet.encode(down4(image))
        dep_f = self.depth_enc.encode(torch.cat([s4, v4], dim=1))
        fused = [d * torch.sigmoid(g) + g for d, g in zip(dep_f, img_f, strict=True)]
        return _absolute(self.out(self.unet.decode(fused)))


class Residual(_UNetBody):
    """Refines the in-graph classical prefill: [image, sparse, valid, prefill, prefill confidence] at 1/4 res."""

    c_in = 7

    def body(self, image, sparse_n, valid):
        """(the body's n_out channels at 1/4 res, the prefill, the 1/4-res returns and their validity)."""
        s4, v4 = sparse_down4(sparse_n, valid)
        fill, fill_conf = prefill(*nearest_down4(sparse_n, valid))
        out = self.out(self.unet(torch.cat([down4(image), s4, v4, fill, fill_conf], dim=1)))
        return out, fill, s4, v4

    def coarse(self, image, sparse_n, valid):
        out, fill, _, _ = self.body(image, sparse_n, valid)
        # residual in normalised inverse depth, small at start so training begins at the prefill
        return torch.cat([fill + 0.05 * torch.tanh(out[:, :1]), out[:, 1:]], dim=1)


class SparseConv(nn.Module):
    """Sparsity-invariant convolution: conv(x * m) / (mean of m in the window), mask max-pooled."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.bias = nn.Parameter(torch.zeros(1, c_out, 1, 1))
        self.k = k

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        num = self.conv(x * m)
        den = F.avg_pool2d(m, self.k, stride=1, padding=self.k // 2, count_include_pad=False)
        x = F.relu(num / (den + 1e-3) + self.bias)
        return x, F.max_pool2d(m, self.k, stride=1, padding=self.k // 2)


class Unguided(CoarseBase):
    """Sparse depth alone through sparsity-invariant convolutions (11, 7, 5, 3, 3) at 1/4 resolution.

    The image only enters the final full-resolution head's edge refinement when ``use_image_head`` is true;
    by default the head sees a zero image, so the family stays LiDAR-only.
    """

    def __init__(self, width=16, levels=0, head_hidden=8, min_depth_m=1.0, max_depth_m=120.0, clamp_px=0):
        super().__init__(width, levels, head_hidden, min_depth_m, max_depth_m, clamp_px)
        ks = (11, 7, 5, 3, 3)
        self.layers = nn.ModuleList(SparseConv(1 if i == 0 else width, width, k) for i, k in enumerate(ks))
        self.out = nn.Conv2d(width, self.n_out, 1)

    def coarse(self, image, sparse_n, valid):
        x, m = sparse_down4(sparse_n, valid)
        for layer in self.layers:
            x, m = layer(x, m)
        return _absolute(self.out(x))

    def core(self, image, sparse_inv_depth):
        return super().core(torch.zeros_like(image), sparse_inv_depth)


__all__ = ["EarlyFusion", "LateFusion", "Residual", "Unguided", "conv_block"]
