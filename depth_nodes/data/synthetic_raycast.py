"""Vectorised ray casting of the synthetic scene for a camera grid and a LiDAR (ring x azimuth) grid.

Hand-written because no installed library ray-casts analytic primitives: each primitive is intersected
only with the rays of its screen-space (camera) or azimuth/elevation (LiDAR) bounding region, so a frame
costs roughly the number of covered rays, not rays x primitives. Rays share one origin per sensor.
"""

from __future__ import annotations

import numpy as np

from depth_nodes.data.synthetic_scene import (
    BOX,
    CURB_HEIGHT_M,
    CYLINDER,
    ELLIPSOID,
    ROAD_HALF_WIDTH_M,
    Prim,
)

#: Ids of the analytic ground surfaces in the id buffer (objects use 0..n-1).
SKY, GROUND_ROAD, GROUND_CURB, GROUND_RAISED = -1, -2, -3, -4
_EPS = 1e-3
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])


def _corners(p: Prim) -> np.ndarray:
    lo, hi = np.asarray(p.lo), np.asarray(p.hi)
    idx = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)])
    return np.where(idx == 1, hi, lo)


def hit_box(o: np.ndarray, inv: np.ndarray, lo, hi) -> np.ndarray:
    """Slab test: entry distance (ray units) or inf. ``inv`` = 1 / direction (h x w x 3)."""
    with np.errstate(invalid="ignore"):
        t0 = (np.asarray(lo, np.float32) - o) * inv
        t1 = (np.asarray(hi, np.float32) - o) * inv
        tmin = np.minimum(t0, t1).max(axis=-1)
        tmax = np.maximum(t0, t1).min(axis=-1)
        ok = (tmax >= tmin) & (tmin > _EPS)
    return np.where(ok, tmin, np.float32(np.inf))


def hit_cylinder(o: np.ndarray, D: np.ndarray, lo, hi) -> np.ndarray:
    """Vertical cylinder (side + top cap) filling the box ``lo``..``hi`` in x/y."""
    cx, cy = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2
    r = (hi[0] - lo[0]) / 2
    ox, oy = o[0] - cx, o[1] - cy
    dx, dy, dz = D[..., 0], D[..., 1], D[..., 2]
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    c = ox * ox + oy * oy - r * r
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / a
        z = o[2] + t * dz
        side = np.where((disc >= 0) & (t > _EPS) & (z >= lo[2]) & (z <= hi[2]), t, np.inf)
        tc = (hi[2] - o[2]) / dz
        px, py = ox + tc * dx, oy + tc * dy
        cap = np.where((tc > _EPS) & (px * px + py * py <= r * r), tc, np.inf)
    return np.minimum(side, cap).astype(np.float32, copy=False)


def hit_ellipsoid(o: np.ndarray, D: np.ndarray, lo, hi) -> np.ndarray:
    """Ellipsoid inscribed in the box ``lo``..``hi``."""
    c = (np.asarray(lo) + np.asarray(hi)) / 2
    rad = (np.asarray(hi) - np.asarray(lo)) / 2
    q = ((o - c) / rad).astype(np.float32)
    e = D * (1.0 / rad).astype(np.float32)
    a = (e * e).sum(axis=-1)
    b = e @ q
    cc = float(q @ q) - 1.0
    disc = b * b - a * cc
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > _EPS), t, np.float32(np.inf)).astype(np.float32, copy=False)


def ground(o: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Road (z = 0, |y| < 6 m), curb faces (|y| = 6 m) and raised sidewalk/yards (z = 0.15 m).

    Returns ``(t, id)`` per ray; origin must be above the road (|y| < 6 m).
    """
    dz = D[..., 2]
    t = np.full(dz.shape, np.inf, np.float32)
    ids = np.full(dz.shape, SKY, np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        down = dz < -1e-6
        t0 = np.where(down, -o[2] / dz, np.inf)
        y0 = o[1] + t0 * D[..., 1]
        road = down & (np.abs(y0) < ROAD_HALF_WIDTH_M)
        t1 = (CURB_HEIGHT_M - o[2]) / dz
        y1 = o[1] + t1 * D[..., 1]
        raised = down & ~road & (np.abs(y1) >= ROAD_HALF_WIDTH_M)
        curb = down & ~road & ~raised
        tcurb = (np.copysign(ROAD_HALF_WIDTH_M, y0) - o[1]) / D[..., 1]
    t[road], ids[road] = t0[road], GROUND_ROAD
    t[raised], ids[raised] = t1[raised], GROUND_RAISED
    t[curb], ids[curb] = tcurb[curb], GROUND_CURB
    return t, ids


class RayGrid:
    """A grid of rays with one origin (world frame), a nearest-hit distance and an id buffer."""

    def __init__(self, origin: np.ndarray, dirs: np.ndarray, far: float) -> None:
        self.o = np.asarray(origin, np.float32)
        self.D = np.ascontiguousarray(dirs, dtype=np.float32)
        with np.errstate(divide="ignore"):
            self.inv = np.float32(1.0) / self.D
        self.far = far
        self.t, self.ids = ground(self.o, self.D)
        self.ids[self.t > far] = SKY
        self.t[self.t > far] = np.inf

    def regions(self, p: Prim) -> list[tuple[slice, slice]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def cast(self, prims: list[Prim]) -> None:
        """Intersect all primitives, keeping the nearest hit per ray (``t`` and ``ids`` updated in place)."""
        for pid, p in enumerate(prims):
            for rs, cs in self.regions(p):
                D = self.D[rs, cs]
                if D.size == 0:
                    continue
                if p.kind == BOX:
                    t = hit_box(self.o, self.inv[rs, cs], p.lo, p.hi)
                elif p.kind == CYLINDER:
                    t = hit_cylinder(self.o, D, p.lo, p.hi)
                elif p.kind == ELLIPSOID:
                    t = hit_ellipsoid(self.o, D, p.lo, p.hi)
                else:
                    raise ValueError(f"unknown primitive kind {p.kind}")
                tb = self.t[rs, cs]
                m = (t < tb) & (t <= self.far)
                tb[m] = t[m]
                self.ids[rs, cs][m] = pid

    def hit_points(self) -> np.ndarray:
        """World coordinates of every hit (NaN-free garbage where no hit; mask with ``ids != SKY``)."""
        t = np.where(np.isfinite(self.t), self.t, 0.0).astype(np.float32)
        return self.o + self.D * t[..., None]


class CameraGrid(RayGrid):
    """Pinhole rays: ``dirs_cam`` has z = 1, so the hit distance ``t`` equals the camera depth."""

    def __init__(self, T_world_cam: np.ndarray, dirs_cam: np.ndarray, K: np.ndarray, far: float) -> None:
        self.T_cam_world = np.linalg.inv(T_world_cam)
        self.K = K
        R = T_world_cam[:3, :3].astype(np.float32)
        super().__init__(T_world_cam[:3, 3], dirs_cam @ R.T, far)

    def regions(self, p: Prim) -> list[tuple[slice, slice]]:
        H, W = self.t.shape
        c = _corners(p) @ self.T_cam_world[:3, :3].T + self.T_cam_world[:3, 3]
        near = 0.05
        front = c[:, 2] > near
        if not front.any() or c[:, 2].min() > self.far:
            return []
        pts = [c[front]]
        za, zb = c[_EDGES[:, 0], 2], c[_EDGES[:, 1], 2]
        cross = (za > near) != (zb > near)
        if cross.any():  # clip the box at the near plane: edge/plane intersections bound the rest
            a, b = c[_EDGES[cross, 0]], c[_EDGES[cross, 1]]
            s = (near - a[:, 2]) / (b[:, 2] - a[:, 2])
            pts.append(a + s[:, None] * (b - a))
        q = np.concatenate(pts)
        u = self.K[0, 0] * q[:, 0] / q[:, 2] + self.K[0, 2]
        v = self.K[1, 1] * q[:, 1] / q[:, 2] + self.K[1, 2]
        u0, u1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 2, W)
        v0, v1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 2, H)
        if u0 >= u1 or v0 >= v1:
            return []
        return [(slice(v0, v1), slice(u0, u1))]


class LidarGrid(RayGrid):
    """Spinning LiDAR: rows = rings (elevation descending), columns = azimuth bins over 360 deg."""

    def __init__(
        self, T_world_velo: np.ndarray, dirs_velo: np.ndarray, elevations: np.ndarray, far: float
    ) -> None:
        self.T = T_world_velo
        self.yaw = float(np.arctan2(T_world_velo[1, 0], T_world_velo[0, 0]))
        self.elev = elevations
        self.n_az = dirs_velo.shape[1]
        R = T_world_velo[:3, :3].astype(np.float32)
        super().__init__(T_world_velo[:3, 3], dirs_velo @ R.T, far)

    def regions(self, p: Prim) -> list[tuple[slice, slice]]:
        o = self.T[:3, 3]
        lo, hi = np.asarray(p.lo) - o, np.asarray(p.hi) - o
        # Horizontal distance range from the sensor to the box footprint.
        dx = max(lo[0], 0.0, -hi[0])
        dy = max(lo[1], 0.0, -hi[1])
        dmin = float(np.hypot(dx, dy))
        c = _corners(p) - o
        dmax = float(np.hypot(c[:, 0], c[:, 1]).max())
        if dmin > self.far:
            return []
        emax = np.arctan2(hi[2], dmin if hi[2] > 0 else dmax)
        emin = np.arctan2(lo[2], dmin if lo[2] < 0 else dmax)
        pad = np.deg2rad(0.3)
        rows = np.flatnonzero((self.elev <= emax + pad) & (self.elev >= emin - pad))
        if rows.size == 0:
            return []
        rs = slice(int(rows[0]), int(rows[-1]) + 1)
        if dmin < 0.5:  # the sensor stands inside or next to the footprint: all azimuths
            return [(rs, slice(0, self.n_az))]
        az = np.arctan2(c[:, 1], c[:, 0]) - self.yaw
        ac = np.arctan2(np.sin(az.mean()), np.cos(az.mean()))
        rel = np.arctan2(np.sin(az - ac), np.cos(az - ac))
        step = 2 * np.pi / self.n_az
        width = int(np.ceil((rel.max() - rel.min()) / step)) + 3
        if width >= self.n_az:
            return [(rs, slice(0, self.n_az))]
        j0 = (int(np.floor((ac + rel.min()) / step)) - 1) % self.n_az
        j1 = j0 + width
        if j1 <= self.n_az:
            return [(rs, slice(j0, j1))]
        return [(rs, slice(j0, self.n_az)), (rs, slice(0, j1 - self.n_az))]
