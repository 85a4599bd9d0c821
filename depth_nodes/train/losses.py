"""Losses of completion training, per sample (so data-parallel ranks average to the global-batch loss).

- depth: L1 + RMSE in metres on the supervised pixels (the metrics the benches report);
- confidence: binary cross-entropy against ``exp(-|error| / (5 % depth + 0.1 m))`` (high where it is right);
- smoothness: edge-aware (image-gradient-weighted) first-order smoothness of inverse depth, for the pixels no
  target covers (self-supervised sources have targets on scan lines only).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def edge_aware_smoothness(inv: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of |d inv| * exp(-|d image|) over x and y (B,)."""
    dx = torch.abs(inv[..., :, 1:] - inv[..., :, :-1])
    dy = torch.abs(inv[..., 1:, :] - inv[..., :-1, :])
    wx = torch.exp(-torch.mean(torch.abs(image[..., :, 1:] - image[..., :, :-1]), dim=1, keepdim=True))
    wy = torch.exp(-torch.mean(torch.abs(image[..., 1:, :] - image[..., :-1, :]), dim=1, keepdim=True))
    return (dx * wx).mean(dim=(1, 2, 3)) + (dy * wy).mean(dim=(1, 2, 3))


def completion_loss(
    depth: torch.Tensor,
    confidence: torch.Tensor,
    target: torch.Tensor,
    image: torch.Tensor,
    smooth_weight: float = 1.0,
    conf_weight: float = 0.05,
    extra: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(scalar loss = mean over samples, parts) for depth/confidence (B x 1 x H x W) vs target (m, 0 = none);
    ``extra`` (B,): further per-sample terms, already weighted (the photometric one)."""
    mask = (target > 0).to(depth.dtype)
    n = mask.sum(dim=(1, 2, 3)).clamp(min=1.0)
    err = (depth - target) * mask
    l1 = err.abs().sum(dim=(1, 2, 3)) / n
    rmse = torch.sqrt((err**2).sum(dim=(1, 2, 3)) / n + 1e-6)
    with torch.no_grad():
        conf_target = torch.exp(-err.abs() / (0.05 * target + 0.1))
    bce = F.binary_cross_entropy(confidence.clamp(1e-4, 1 - 1e-4), conf_target, reduction="none")
    conf = (bce * mask).sum(dim=(1, 2, 3)) / n
    smooth = edge_aware_smoothness(1.0 / depth.clamp(min=0.1), image)
    per_sample = l1 + 0.5 * rmse + conf_weight * conf + smooth_weight * smooth
    if extra is not None:
        per_sample = per_sample + extra
    loss = per_sample.mean()
    parts = {"l1_m": float(l1.detach().mean()), "rmse_m": float(rmse.detach().mean()), "conf": float(conf.detach().mean())}
    return loss, parts
