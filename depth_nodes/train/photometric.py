"""Photometric self-supervision between consecutive frames (torch; imported only by training).

The Monodepth2 reprojection loss (Godard, Mac Aodha, Firman, Brostow: "Digging Into Self-Supervised Monocular
Depth Estimation", ICCV 2019), with the ego-motion given (``poses/`` sidecar of the layout: TF/odometry, or
the LiDAR odometry of ``depth-nodes make-gt``) instead of predicted by a pose network:

1. back-project every pixel of the target crop with the predicted depth (the crop sits at ``offset_xy`` in
   the full image, so pixel (u, v) of the crop is (u + x0, v + y0) of the image whose intrinsics are ``K``);
2. move the points into each source frame (``T_src_tgt``) and project them with ``K``;
3. ``grid_sample`` the full source image there (bilinear) and compare with the target:
   ``pe = 0.85 * (1 - SSIM) / 2 + 0.15 * L1`` per pixel (3x3 SSIM from ``avg_pool2d``, reflection padded, as in
   Monodepth2), in un-normalised [0, 1] RGB;
4. per pixel the **minimum over the source frames** (a pixel occluded in one neighbour is usually seen in the
   other), and **auto-masking**: the un-warped (identity) loss of the sources joins that minimum, without a
   gradient -- where the image does not change between frames (the car stands still, an object moves with
   the car, a texture-less region) warping explains nothing, the identity wins and the pixel teaches nothing;
5. pixels that project outside a source image or behind it are excluded for that source (a pixel no source
   sees is dropped); the loss of a sample is the mean over the pixels some source sees (0 when none).

One sample at a time (each may come from another layout with another image size); the result is a per-sample
vector, so the batch loss stays a mean of per-sample losses (data-parallel ranks stay exact).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from depth_nodes.train.photo_data import PhotoInputs

SSIM_WEIGHT = 0.85
C1, C2 = 0.01**2, 0.03**2
MIN_DEPTH_M = 0.1  # points closer to a source camera than this count as out of view


def ssim_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1 - SSIM) / 2 per pixel, 3x3 windows (B x C x H x W -> B x C x H x W, in [0, 1])."""
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + C1) * (2 * sigma_xy + C2)
    den = (mu_x**2 + mu_y**2 + C1) * (sigma_x + sigma_y + C2)
    return torch.clamp((1 - num / den) / 2, 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Monodepth2's per-pixel error ``0.85 (1 - SSIM) / 2 + 0.15 |pred - target|`` (N x 3 x H x W -> N x 1 x H x W)."""
    l1 = torch.abs(pred - target).mean(dim=1, keepdim=True)
    ssim = ssim_distance(pred, target).mean(dim=1, keepdim=True)
    return SSIM_WEIGHT * ssim + (1 - SSIM_WEIGHT) * l1


def warp_source(
    source: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    offset_xy: tuple[int, int],
    T_src_tgt: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(warped, in_view): the sources (S x 3 x H x W) sampled where the target crop's pixels (depth 1 x 1 x h x w,
    metres) land; in_view S x 1 x h x w is True where the point lies in front of the source camera and inside
    its image."""
    _, _, h, w = depth.shape
    S, _, H, W = source.shape
    dev, dt = depth.device, depth.dtype
    v, u = torch.meshgrid(
        torch.arange(h, device=dev, dtype=dt) + offset_xy[1],
        torch.arange(w, device=dev, dtype=dt) + offset_xy[0],
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1)  # 3 x hw
    rays = torch.linalg.solve(K, pix)  # K^-1 [u v 1]^T
    pts = rays * depth.reshape(1, -1)  # 3 x hw, target camera
    R, t = T_src_tgt[:, :3, :3], T_src_tgt[:, :3, 3:]
    cam = R @ pts.unsqueeze(0) + t  # S x 3 x hw
    z = cam[:, 2:3]
    proj = K.unsqueeze(0) @ cam
    zs = z.clamp(min=1e-3)
    us, vs = proj[:, 0:1] / zs, proj[:, 1:2] / zs
    in_view = (z > MIN_DEPTH_M) & (us >= 0) & (us <= W - 1) & (vs >= 0) & (vs <= H - 1)
    grid = torch.cat([2 * us / (W - 1) - 1, 2 * vs / (H - 1) - 1], dim=1)  # S x 2 x hw
    grid = grid.permute(0, 2, 1).reshape(S, h, w, 2)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped, in_view.reshape(S, 1, h, w)


def photometric_loss_one(
    target: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    offset_xy: tuple[int, int],
    sources: torch.Tensor,
    T_src_tgt: torch.Tensor,
    automask: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, kept): the photometric loss of one sample (a scalar tensor) and the mask of the pixels that teach
    (1 x 1 x h x w: seen by a source, and with ``automask`` warped better than un-warped).

    target 1 x 3 x h x w and sources S x 3 x H x W in [0, 1]; depth 1 x 1 x h x w metres; K 3 x 3 of the full
    image; T_src_tgt S x 4 x 4.
    """
    _, _, h, w = depth.shape
    warped, in_view = warp_source(sources, depth, K, offset_xy, T_src_tgt)
    err = photometric_error(warped, target.expand_as(warped))
    err = torch.where(in_view, err, torch.full_like(err, float("inf")))
    best = err.min(dim=0, keepdim=True).values  # per-pixel minimum over the sources
    seen = torch.isfinite(best)  # some source sees the pixel
    kept = seen
    if automask:
        x0, y0 = offset_xy
        still = sources[:, :, y0 : y0 + h, x0 : x0 + w]  # the un-warped source at the crop's pixels
        with torch.no_grad():
            identity = photometric_error(still, target.expand_as(still)).min(dim=0, keepdim=True).values
        kept = seen & (best < identity)
        best = torch.minimum(best, identity)  # Monodepth2: the identity loss joins the minimum (no gradient)
    loss = torch.where(seen, best, torch.zeros_like(best)).sum() / seen.sum().clamp(min=1)
    return loss, kept


def to_unit_rgb(image: np.ndarray, device=None) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H x W float32 in [0, 1]."""
    return torch.from_numpy(np.array(image, np.uint8)).to(device).permute(2, 0, 1)[None].float() / 255.0


def photometric_term(depth: torch.Tensor, inputs: Sequence[PhotoInputs | None]) -> torch.Tensor:
    """Per-sample photometric loss (B,) of a batch's depth (B x 1 x h x w); 0 for samples without inputs."""
    out = []
    for b, p in enumerate(inputs):
        if p is None or not p.sources:
            out.append(depth.new_zeros(()))
            continue
        dev, dt = depth.device, depth.dtype
        sources = torch.cat([to_unit_rgb(s, dev) for s in p.sources]).to(dt)
        T = torch.from_numpy(np.stack(p.T_src_tgt)).to(dev, dt)
        K = torch.from_numpy(np.asarray(p.K)).to(dev, dt)
        loss, _ = photometric_loss_one(
            to_unit_rgb(p.target, dev).to(dt), depth[b : b + 1], K, p.offset_xy, sources, T
        )
        out.append(loss)
    return torch.stack(out)
