"""Layout of the synthetic street: primitives (boxes, vertical cylinders, ellipsoids), traffic and ego path.

World frame: x along the (straight) road, y to the left, z up, ground at z = 0. The road (|y| < 6 m) has
two driving lanes (centres y = -1.75 ego direction, +1.75 oncoming) and parking strips; a 0.15 m curb
raises sidewalks and yards (|y| >= 6 m). Static content is generated in 40 m chunks, each from its own
``(seed, chunk)`` random stream, so a frame's scene does not depend on how many frames are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BOX, CYLINDER, ELLIPSOID = 0, 1, 2

# Materials (albedo texture + LiDAR reflectivity are chosen per material in synthetic_render).
(
    ROAD,
    CURB,
    SIDEWALK,
    GRASS,
    FACADE,
    CAR_BODY,
    CAR_GLASS,
    TYRE,
    METAL,
    SIGN,
    TRUNK,
    FOLIAGE,
    HEDGE,
) = range(13)

ROAD_HALF_WIDTH_M = 6.0
CURB_HEIGHT_M = 0.15
SIDEWALK_OUTER_M = 9.5
EGO_LANE_Y_M = -1.75
CHUNK_M = 40.0
LIDAR_HEIGHT_M = 1.73


@dataclass(frozen=True)
class Prim:
    """One primitive given by its axis-aligned bounds; cylinders are vertical, ellipsoids fill the box."""

    kind: int
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    material: int
    color: tuple[float, float, float]

    def moved(self, dx: float) -> Prim:
        return Prim(
            self.kind,
            (self.lo[0] + dx, self.lo[1], self.lo[2]),
            (self.hi[0] + dx, self.hi[1], self.hi[2]),
            self.material,
            self.color,
        )


def _box(lo, hi, material, color) -> Prim:
    return Prim(BOX, tuple(map(float, lo)), tuple(map(float, hi)), material, tuple(map(float, color)))


def _cyl(cx, cy, r, z0, z1, material, color) -> Prim:
    return Prim(CYLINDER, (cx - r, cy - r, z0), (cx + r, cy + r, z1), material, tuple(map(float, color)))


def _ell(cx, cy, cz, rx, ry, rz, material, color) -> Prim:
    return Prim(
        ELLIPSOID,
        (cx - rx, cy - ry, cz - rz),
        (cx + rx, cy + ry, cz + rz),
        material,
        tuple(map(float, color)),
    )


CAR_COLORS = np.array(
    [
        [0.75, 0.75, 0.78],  # silver
        [0.92, 0.92, 0.9],  # white
        [0.06, 0.06, 0.07],  # black (LiDAR dropouts)
        [0.55, 0.08, 0.07],  # red
        [0.1, 0.18, 0.45],  # blue
        [0.25, 0.27, 0.28],  # dark grey
        [0.12, 0.25, 0.15],  # dark green
    ]
)
FACADE_COLORS = np.array(
    [[0.78, 0.7, 0.58], [0.65, 0.42, 0.33], [0.82, 0.8, 0.75], [0.55, 0.55, 0.57], [0.7, 0.6, 0.45]]
)


def car(x: float, y: float, heading: float, color, rng: np.random.Generator) -> list[Prim]:
    """A car centred at (x, y) aligned with the road: body, cabin (glass) and four tyres."""
    length, width = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9)
    hl, hw = length / 2, width / 2
    body = _box((x - hl, y - hw, 0.3), (x + hl, y + hw, 1.0), CAR_BODY, color)
    c0 = x - hl * 0.55 + heading * 0.1 * hl
    cabin = _box(
        (c0, y - hw + 0.1, 1.0), (c0 + length * 0.5, y + hw - 0.1, rng.uniform(1.4, 1.55)), CAR_GLASS, color
    )
    # Tyres sit inside the body's silhouette and show below the sill (z < 0.3 m).
    tyres = [
        _box(
            (ax - 0.33, y + sy * (hw - 0.02) - (sy > 0) * 0.25, 0.0),
            (ax + 0.33, y + sy * (hw - 0.02) + (sy < 0) * 0.25, 0.62),
            TYRE,
            (0.03, 0.03, 0.03),
        )
        for ax in (x - hl * 0.62, x + hl * 0.62)
        for sy in (-1, 1)
    ]
    return [body, cabin, *tyres]


@lru_cache(maxsize=256)
def static_chunk(seed: int, k: int) -> tuple[Prim, ...]:
    """Static primitives of chunk ``k`` (x in [40k, 40k + 40) m)."""
    rng = np.random.default_rng([seed, k + 1_000_000, 101])
    x0, x1 = k * CHUNK_M, (k + 1) * CHUNK_M
    prims: list[Prim] = []
    for side in (-1.0, 1.0):
        # Facades: blocks with gaps; windows are a texture on the front face.
        x = x0 + rng.uniform(0, 4)
        while x < x1 - 3:
            w = min(rng.uniform(8, 22), x1 - x)
            setback = rng.uniform(10.5, 13.5)
            h = rng.uniform(6, 18)
            c = FACADE_COLORS[rng.integers(len(FACADE_COLORS))] * rng.uniform(0.85, 1.1)
            y_in, y_out = side * setback, side * (setback + 10)
            prims.append(_box((x, min(y_in, y_out), 0.0), (x + w, max(y_in, y_out), h), FACADE, c))
            x += w + (rng.uniform(3, 8) if rng.random() < 0.35 else 0.0)
        # Parked cars in the parking strip.
        x = x0 + rng.uniform(0, 6)
        while x < x1 - 3:
            if rng.random() < 0.55:
                color = CAR_COLORS[rng.integers(len(CAR_COLORS))]
                prims += car(x + 2.5, side * 4.8, 1.0, color, rng)
            x += rng.uniform(5.5, 9)
        # Trees on the sidewalk: trunk + crown.
        x = x0 + rng.uniform(0, 8)
        while x < x1:
            if rng.random() < 0.6:
                r = rng.uniform(0.12, 0.22)
                y = side * rng.uniform(8.3, 9.0)
                top = rng.uniform(2.2, 3.2)
                prims.append(_cyl(x, y, r, 0.0, top + 0.5, TRUNK, (0.35, 0.25, 0.17)))
                cr = rng.uniform(1.2, 2.2)
                g = (0.15 + rng.uniform(0, 0.1), 0.35 + rng.uniform(0, 0.15), 0.1)
                prims.append(_ell(x, y, top + cr * 0.9, cr, cr, cr * rng.uniform(0.8, 1.2), FOLIAGE, g))
            x += rng.uniform(9, 16)
        # Street lights (tall thin poles) and sign posts near the curb.
        x = x0 + rng.uniform(0, 20)
        while x < x1:
            y = side * 6.5
            prims.append(_cyl(x, y, 0.08, 0.0, 7.5, METAL, (0.45, 0.46, 0.48)))
            prims.append(
                _box(
                    (x - 0.15, y - side * 1.5 - 0.15, 7.2), (x + 0.15, y + 0.15, 7.4), METAL, (0.4, 0.4, 0.42)
                )
            )
            if rng.random() < 0.5:
                xs = x + rng.uniform(3, 8)
                prims.append(_cyl(xs, y, 0.04, 0.0, 2.6, METAL, (0.6, 0.6, 0.62)))
                sc = [(0.75, 0.1, 0.1), (0.1, 0.25, 0.7), (0.9, 0.75, 0.1)][rng.integers(3)]
                prims.append(_box((xs - 0.05, y - 0.35, 2.0), (xs - 0.02, y + 0.35, 2.7), SIGN, sc))
            x += rng.uniform(22, 32)
        # Front yards: hedges or fences (thin posts).
        x = x0
        while x < x1:
            seg = rng.uniform(6, 14)
            kind = rng.random()
            yb = side * 9.9
            if kind < 0.35:
                hh = rng.uniform(0.8, 1.5)
                prims.append(
                    _box(
                        (x, min(yb, yb + side * 0.6), 0.0),
                        (x + seg * 0.9, max(yb, yb + side * 0.6), hh),
                        HEDGE,
                        (0.1, 0.3, 0.1),
                    )
                )
            elif kind < 0.65:
                for px in np.arange(x, x + seg * 0.9, 1.6):
                    prims.append(_cyl(float(px), yb, 0.035, 0.0, 1.1, METAL, (0.3, 0.3, 0.32)))
            x += seg
    return tuple(prims)


@lru_cache(maxsize=256)
def _oncoming_chunk(seed: int, k: int) -> tuple[tuple[Prim, ...], float]:
    """One oncoming car (or none) spawned in chunk ``k`` at t = 0 and its speed (m/s, towards -x)."""
    rng = np.random.default_rng([seed, k + 1_000_000, 202])
    if rng.random() < 0.45:
        return (), 0.0
    color = CAR_COLORS[rng.integers(len(CAR_COLORS))]
    return tuple(car(k * CHUNK_M + rng.uniform(0, CHUNK_M), 1.75, -1.0, color, rng)), float(
        rng.uniform(7, 12)
    )


@dataclass(frozen=True)
class EgoPath:
    """Ego (LiDAR) trajectory: constant speed along x, gentle lateral weave within the lane; optionally
    standing still from ``stop_s[0]`` to ``stop_s[1]`` s (an instant stop and start: the demo's dropout)."""

    speed_mps: float
    amplitude_m: float
    wavelength_m: float
    phase: float
    stop_s: tuple[float, float] | None = None

    @classmethod
    def from_seed(cls, seed: int) -> EgoPath:
        rng = np.random.default_rng([seed, 303])
        return cls(
            float(rng.uniform(8, 10)),
            float(rng.uniform(0.4, 0.8)),
            float(rng.uniform(100, 160)),
            float(rng.uniform(0, 2 * np.pi)),
        )

    def pose(self, t: float) -> np.ndarray:
        """``T_world_velo`` (4x4) at time ``t`` seconds."""
        if self.stop_s is not None:  # the time spent standing still does not move the car
            t = t - min(max(t - self.stop_s[0], 0.0), self.stop_s[1] - self.stop_s[0])
        x = self.speed_mps * t
        k = 2 * np.pi / self.wavelength_m
        y = EGO_LANE_Y_M + self.amplitude_m * np.sin(k * x + self.phase)
        yaw = np.arctan(self.amplitude_m * k * np.cos(k * x + self.phase))
        c, s = np.cos(yaw), np.sin(yaw)
        T = np.eye(4)
        T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
        T[:3, 3] = [x, y, LIDAR_HEIGHT_M]
        return T


def scene_at(seed: int, t: float, x_min: float, x_max: float) -> list[Prim]:
    """All primitives at time ``t`` whose x-extent overlaps [x_min, x_max]: static, oncoming, lead car."""
    prims: list[Prim] = []
    for k in range(int(np.floor(x_min / CHUNK_M)) - 1, int(np.floor(x_max / CHUNK_M)) + 1):
        prims += [p for p in static_chunk(seed, k) if p.hi[0] >= x_min and p.lo[0] <= x_max]
    # Oncoming cars move towards -x: chunks far ahead at t = 0 may have arrived by now.
    for k in range(int(np.floor(x_min / CHUNK_M)) - 1, int(np.floor((x_max + 12 * t) / CHUNK_M)) + 2):
        cars, v = _oncoming_chunk(seed, k)
        for p in cars:
            q = p.moved(-v * t)
            if q.hi[0] >= x_min and q.lo[0] <= x_max:
                prims.append(q)
    # A lead car in the ego lane keeps a varying gap of 16-30 m.
    ego = EgoPath.from_seed(seed)
    rng = np.random.default_rng([seed, 404])
    color = CAR_COLORS[rng.integers(len(CAR_COLORS))]
    gap = 23 + 7 * np.sin(0.25 * t + rng.uniform(0, 6))
    prims += car(ego.speed_mps * t + gap, EGO_LANE_Y_M, 1.0, color, rng)
    return prims
