"""LiDAR spoofing: returns injected in one image region, and how far the corruption spreads.

The attacker (Cao et al., CCS 2019: a few hundred spoofed points suffice to fake an obstacle) injects
``n`` returns of a phantom object at half the true depth inside a ``box_px`` square region. The injected
points are placed in 3D on the camera rays of random pixels of the box and moved into the LiDAR frame, so
they pass the same projection and occlusion filter as real returns.

Spread: pixels *outside* the box whose dense depth changed by more than ``SPREAD_THRESHOLD_M`` between the
clean and the attacked frame, their count, and the farthest such pixel's distance from the box (px,
Chebyshev). A completer that confines the attack to the box scores 0 / 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.transforms import invert, transform_points

SEVERITY_PARAMS = {"lidar_spoof": [10, 25, 50, 100, 200]}  # injected returns
BOX_PX = 48
PHANTOM_DEPTH_FACTOR = 0.5
SPREAD_THRESHOLD_M = 1.0


@dataclass
class SpoofRegion:
    v0: int
    u0: int
    size: int
    depth_m: float

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        m = np.zeros(shape, bool)
        m[self.v0 : self.v0 + self.size, self.u0 : self.u0 + self.size] = True
        return m


def choose_region(sparse: np.ndarray, rng: np.random.Generator, box_px: int = BOX_PX) -> SpoofRegion | None:
    """A box with >= 20 returns in the lower two thirds of the image (seeded); phantom at half their median."""
    h, w = sparse.shape
    for _ in range(50):
        v0 = int(rng.integers(h // 3, h - box_px))
        u0 = int(rng.integers(0, w - box_px))
        d = sparse[v0 : v0 + box_px, u0 : u0 + box_px]
        if np.count_nonzero(d) >= 20:
            return SpoofRegion(v0, u0, box_px, float(PHANTOM_DEPTH_FACTOR * np.median(d[d > 0])))
    return None


def inject(
    points: np.ndarray,
    region: SpoofRegion,
    n: int,
    camera: CameraModel,
    T_cam_lidar: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``points`` with ``n`` phantom returns appended (intensity 1: a spoofer's pulses are strong)."""
    rays = camera.pixel_rays()
    vs = rng.integers(region.v0, region.v0 + region.size, n)
    us = rng.integers(region.u0, region.u0 + region.size, n)
    z = region.depth_m * rng.uniform(0.98, 1.02, n)
    p_cam = np.stack([rays[vs, us, 0] * z, rays[vs, us, 1] * z, z], 1)
    p_lidar = transform_points(invert(T_cam_lidar), p_cam.astype(np.float32))
    extra = np.concatenate([p_lidar, np.ones((n, 1))], 1).astype(np.float32)
    return np.concatenate([np.asarray(points, np.float32), extra])


def spread(clean: np.ndarray, attacked: np.ndarray, region: SpoofRegion) -> dict[str, float]:
    """Pixels outside ``region`` changed by > SPREAD_THRESHOLD_M, and the farthest one's distance (px)."""
    inside = region.mask(clean.shape)
    both = np.isfinite(clean) & np.isfinite(attacked)
    changed = both & (np.abs(attacked - clean) > SPREAD_THRESHOLD_M)
    # a pixel that gained or lost an estimate changed too
    changed |= np.isfinite(clean) ^ np.isfinite(attacked)
    out = changed & ~inside
    vv, uu = np.nonzero(out)
    if vv.size:
        dv = np.maximum(np.maximum(region.v0 - vv, vv - (region.v0 + region.size - 1)), 0)
        du = np.maximum(np.maximum(region.u0 - uu, uu - (region.u0 + region.size - 1)), 0)
        far = float(np.max(np.maximum(dv, du)))
    else:
        far = 0.0
    return {
        "changed_inside_frac": float(changed[inside].mean()),
        "changed_outside_px": float(out.sum()),
        "spread_max_px": far,
    }
