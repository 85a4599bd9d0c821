"""Frames for parity checks, calibration and benchmarks: saved ``.npz`` frames or procedural street-like ones.

A saved frame is an ``.npz`` with ``image`` (H x W x 3 uint8 RGB) and ``sparse_depth_m`` (H x W float32, 0 = no
return). The procedural frames look like a KITTI street on purpose (sky, road, boxes; LiDAR rings ~0.4 deg apart
with 2-pixel azimuth steps), so value ranges and sparsity match what a model sees on a robot: random noise would
exercise other numerics (an FP16 overflow or an INT8 range) than real frames do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_nodes.runtime.errors import ModelError

Frame = tuple[np.ndarray, np.ndarray]  # (image H x W x 3 uint8, sparse depth H x W float32 m)


def street_frame(height: int = 352, width: int = 1216, seed: int = 0) -> Frame:
    """A procedural street frame: ground plane + a few boxes seen by a 1.65 m high camera and a 64-ring LiDAR."""
    rng = np.random.default_rng(seed)
    f = 721.5 * width / 1242.0
    cy, cx, cam_h = 0.46 * height, 0.5 * width, 1.65
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = np.full((height, width), np.inf, np.float32)
    below = v > cy + 1
    depth[below] = f * cam_h / (v[below] - cy)  # ground plane
    image = np.empty((height, width, 3), np.float32)
    sky = np.clip((cy - v) / max(cy, 1), 0, 1)[..., None]
    image[:] = 150 + 80 * sky * np.array([0.6, 0.8, 1.0])
    road = below[..., None] * (90 + 30 * rng.random((height, width, 1)))
    image = np.where(below[..., None], road, image)
    for _ in range(int(rng.integers(3, 7))):
        z = float(rng.uniform(6.0, 60.0))
        x = float(rng.uniform(-8.0, 8.0))
        bw, bh = float(rng.uniform(1.5, 4.0)), float(rng.uniform(1.4, 3.5))
        u0, u1 = cx + f * (x - bw / 2) / z, cx + f * (x + bw / 2) / z
        v1 = cy + f * cam_h / z
        v0 = v1 - f * bh / z
        box = (u >= u0) & (u < u1) & (v >= v0) & (v < v1) & (z < depth)
        depth[box] = z
        image[box] = rng.uniform(30, 220, 3)
    image += rng.normal(0, 2.0, image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    sparse = np.zeros((height, width), np.float32)
    elev = np.deg2rad(np.linspace(2.0, -24.8, 64))
    rows = np.round(cy - f * np.tan(elev)).astype(int)
    rows = rows[(rows >= 0) & (rows < height)]
    cols = np.arange(int(rng.integers(0, 2)), width, 2)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    d = depth[rr, cc]
    keep = np.isfinite(d) & (d < 120.0) & (rng.random(d.shape) > 0.05)
    sparse[rr[keep], cc[keep]] = d[keep] + rng.normal(0, 0.015, int(keep.sum())).astype(np.float32)
    return image, sparse


def street_frames(n: int, height: int = 352, width: int = 1216, seed: int = 0) -> list[Frame]:
    return [street_frame(height, width, seed + i) for i in range(n)]


def save_frames(directory: str | Path, frames: list[Frame]) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (img, sp) in enumerate(frames):
        p = out / f"frame_{i:04d}.npz"
        np.savez_compressed(p, image=img, sparse_depth_m=sp)
        paths.append(p)
    return paths


def load_frames(directory: str | Path, limit: int | None = None) -> list[Frame]:
    """Saved ``.npz`` frames of ``directory`` (sorted by name); :class:`ModelError` when none or malformed."""
    d = Path(directory)
    paths = sorted(d.glob("*.npz")) if d.is_dir() else []
    if not paths:
        raise ModelError(f"no .npz frames (image + sparse_depth_m) in {d}")
    frames = []
    for p in paths[:limit]:
        try:
            with np.load(p, allow_pickle=False) as z:
                img, sp = z["image"], z["sparse_depth_m"].astype(np.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"frame {p} is not an image + sparse_depth_m .npz: {exc}") from None
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or sp.shape != img.shape[:2]:
            raise ModelError(f"frame {p}: need image H x W x 3 uint8 and sparse_depth_m H x W, got {img.shape}, {sp.shape}")
        frames.append((img, sp))
    return frames
