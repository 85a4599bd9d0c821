"""LiDAR scan patterns of the synthetic drive and their ray casting from a moving sensor.

Patterns (``PATTERNS``; every one is a 100 ms integration, stamped at the frame's stamp):

- ``spinning64`` (default, HDL-64E-like): 64 rings +2.0 .. -8.33 deg (1/3 deg) and -8.87 .. -24.8 deg,
  2118 azimuth steps over 360 deg. It spins clockwise seen from above and faces forward at the frame stamp
  (KITTI triggers the camera then), so a firing at azimuth ``phi`` (rad, left positive, (-pi, pi]) happens at
  ``-phi / 2 pi * 100 ms``: the sweep runs from the rear (-50 ms) over the left, forward (0) and the right to
  the rear again (+50 ms). Ring ids 0 (top) .. 63.
- ``spinning32`` (HDL-32E-like): 32 rings +10.67 .. -30.67 deg (1.33 deg), 2250 azimuth steps, same timing.
- ``raster`` (solid-state, no rings): forward 120 x 25 deg (azimuth +-60, elevation +7.5 .. -17.5 deg);
  the fast axis sweeps azimuth back and forth (0.25 deg steps, 481 per line) while the slow axis descends
  continuously through 125 lines in 100 ms, so the lines are slightly slanted zig-zags, not rings.
- ``rosette`` (Livox-like non-repetitive, no rings): two counter-rotating Risley-prism deflections of 17.5 deg
  each (127.3 Hz and -83.9 Hz) draw a rose curve over a 70 deg cone, 40 000 points per 100 ms; the phase runs
  on with absolute time, so every frame samples different directions.

Motion: firings are grouped into short slices (~1 deg of a spinning sweep, one raster line, 1 ms of the
rosette) that share one firing time; with ``motion=True`` each slice is cast from the ego pose at its own
time, so a moving sensor measures every point from where it was then (the skew a deskewer must undo). The
per-point time of a return is its slice's time, exactly. Moving cars stay where they are at the frame stamp
during the sweep (only ego-motion skews the scan).

Casting is hand-written for the same reason as ``synthetic_raycast`` (analytic primitives, no library):
each primitive is culled once per frame against the whole sweep (its azimuth/elevation bounds seen from
anywhere in the box of sensor positions, a conservative Minkowski-difference bound), then intersected
with the rays of the slices that overlap those bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from depth_nodes.data.synthetic_raycast import SKY, ground, hit_box, hit_cylinder, hit_ellipsoid
from depth_nodes.data.synthetic_scene import BOX, CYLINDER, ELLIPSOID, Prim

PATTERNS = ("spinning64", "spinning32", "raster", "rosette")
DEFAULT_PATTERN = "spinning64"
#: Default of ``render_frame(motion=...)``: cast each slice from the ego pose at its own time.
DEFAULT_MOTION = False
SWEEP_NS = 100_000_000
_PAD_RAD = np.deg2rad(0.3)
_TWO_PI = 2 * np.pi


@dataclass(frozen=True)
class Slice:
    """Rays fired at one time: ``idx`` (R x C ray ids), columns sorted by azimuth, rows by elevation."""

    idx: np.ndarray  # R x C int64 indices into the pattern's rays
    col_az: np.ndarray  # C float64 sensor-frame azimuth (rad), ascending and continuous
    row_el: np.ndarray  # R x 2 float64 (lowest, highest) elevation of each row (rad)
    time_ns: int  # firing time relative to the frame stamp


@dataclass(frozen=True)
class ScanPattern:
    """Ray directions (sensor frame: x forward, y left, z up), firing times, ring ids and field of view."""

    name: str
    dirs: np.ndarray  # N x 3 float32 unit vectors, in output (packet) order
    time_ns: np.ndarray  # N int64 firing time relative to the frame stamp
    rings: np.ndarray | None  # N int16 ring id (0 = top) or None for ring-free patterns
    slices: tuple[Slice, ...]
    elevation_deg: tuple[float, float]  # (lowest, highest) elevation of any ray
    azimuth_deg: tuple[float, float] | None = None  # forward field (left positive); None = 360 deg
    cone_deg: float | None = None  # half-angle of a circular field around x (rosette)

    def in_fov(self, dirs: np.ndarray, margin_deg: float = 0.04) -> np.ndarray:
        """Which directions (N x 3, sensor frame) lie inside the pattern's field of view (+ margin)."""
        d = np.asarray(dirs, np.float64)
        horiz = np.hypot(d[:, 0], d[:, 1])
        el = np.degrees(np.arctan2(d[:, 2], horiz))
        az = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
        if self.cone_deg is not None:
            return np.hypot(az, el) <= self.cone_deg + margin_deg
        ok = (el >= self.elevation_deg[0] - margin_deg) & (el <= self.elevation_deg[1] + margin_deg)
        if self.azimuth_deg is not None:
            ok &= (az >= self.azimuth_deg[0] - margin_deg) & (az <= self.azimuth_deg[1] + margin_deg)
        return ok


def _unit(az: np.ndarray, el: np.ndarray) -> np.ndarray:
    az, el = np.broadcast_arrays(az, el)
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).astype(np.float32)


def spinning_elevations_deg(n_rings: int) -> np.ndarray:
    """Ring elevations (deg, ring 0 = top first) of the 64- and 32-ring spinning patterns."""
    if n_rings == 64:
        return np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.87, -24.8, 32)])
    if n_rings == 32:
        return np.linspace(10.67, -30.67, 32)
    raise ValueError(f"no spinning pattern with {n_rings} rings (64, 32)")


def _spinning(name: str, n_rings: int, n_az: int, cols_per_slice: int = 6) -> ScanPattern:
    el_deg = spinning_elevations_deg(n_rings)
    el = np.deg2rad(el_deg)
    az = np.arange(n_az) * (_TWO_PI / n_az)  # column j, as the packets come: 0 .. 360 deg
    phi = np.where(az <= np.pi, az, az - _TWO_PI)
    col_t = np.rint(-phi / _TWO_PI * SWEEP_NS).astype(np.int64)
    dirs = _unit(az[:, None], el[None, :]).reshape(-1, 3)  # column-major: (column, ring)
    ray_ids = np.arange(n_az * n_rings).reshape(n_az, n_rings)
    order = np.argsort(phi, kind="stable")  # contiguous azimuth groups without the +-180 deg seam
    time_ns = np.empty(n_az * n_rings, np.int64)
    slices = []
    row_el = np.stack([el, el], 1)
    for g in range(0, n_az, cols_per_slice):
        cols = order[g : g + cols_per_slice]
        t = int(np.rint(col_t[cols].mean()))
        time_ns[ray_ids[cols].reshape(-1)] = t
        slices.append(Slice(ray_ids[cols].T.copy(), phi[cols], row_el, t))
    rings = np.tile(np.arange(n_rings, dtype=np.int16), n_az)
    return ScanPattern(name, dirs, time_ns, rings, tuple(slices), (float(el_deg[-1]), float(el_deg[0])))


def _row_slice(ids: np.ndarray, az: np.ndarray, el: np.ndarray, t_ns: int) -> Slice:
    """A one-row slice of arbitrary rays: sorted by azimuth, one elevation band."""
    o = np.argsort(az, kind="stable")
    return Slice(ids[o][None, :], az[o], np.array([[el.min(), el.max()]]), int(t_ns))


def _raster() -> ScanPattern:
    n_lines, n_cols = 125, 481
    el_top, el_bottom = 7.5, -17.5
    az_line = np.deg2rad(np.linspace(60.0, -60.0, n_cols))  # left to right
    line_ns = SWEEP_NS / n_lines
    dirs, times, slices = [], [], []
    for k in range(n_lines):
        az = az_line if k % 2 == 0 else az_line[::-1]  # boustrophedon
        frac = (k + np.arange(n_cols) / n_cols) / n_lines  # slow axis descends continuously
        el = np.deg2rad(el_top + (el_bottom - el_top) * frac)
        t = int(np.rint(-SWEEP_NS / 2 + (k + 0.5) * line_ns))
        ids = np.arange(k * n_cols, (k + 1) * n_cols)
        dirs.append(_unit(az, el))
        times.append(np.full(n_cols, t, np.int64))
        slices.append(_row_slice(ids, az, el, t))
    return ScanPattern(
        "raster",
        np.concatenate(dirs),
        np.concatenate(times),
        None,
        tuple(slices),
        (el_bottom, el_top),
        azimuth_deg=(-60.0, 60.0),
    )


ROSETTE_POINTS = 40_000
ROSETTE_HZ = (127.3, -83.9)
ROSETTE_CONE_DEG = 35.0


def _rosette(frame_index: int, n_slices: int = 100) -> ScanPattern:
    t_rel = (np.arange(ROSETTE_POINTS) + 0.5) / ROSETTE_POINTS * SWEEP_NS - SWEEP_NS / 2  # ns
    t_abs_s = frame_index * SWEEP_NS * 1e-9 + t_rel * 1e-9
    half = np.deg2rad(ROSETTE_CONE_DEG / 2)
    w1, w2 = (_TWO_PI * f for f in ROSETTE_HZ)
    az = half * (np.cos(w1 * t_abs_s) + np.cos(w2 * t_abs_s + 0.7))
    el = half * (np.sin(w1 * t_abs_s) + np.sin(w2 * t_abs_s + 0.7))
    per = ROSETTE_POINTS // n_slices
    times = np.empty(ROSETTE_POINTS, np.int64)
    slices = []
    for s in range(n_slices):
        ids = np.arange(s * per, (s + 1) * per)
        t = int(np.rint(t_rel[ids].mean()))
        times[ids] = t
        slices.append(_row_slice(ids, az[ids], el[ids], t))
    return ScanPattern(
        "rosette",
        _unit(az, el),
        times,
        None,
        tuple(slices),
        (-ROSETTE_CONE_DEG, ROSETTE_CONE_DEG),
        cone_deg=ROSETTE_CONE_DEG,
    )


@lru_cache(maxsize=4)
def _fixed_pattern(name: str) -> ScanPattern:
    if name == "spinning64":
        return _spinning(name, 64, 2118)
    if name == "spinning32":
        return _spinning(name, 32, 2250)
    return _raster()


def scan_pattern(name: str = DEFAULT_PATTERN, frame_index: int = 0) -> ScanPattern:
    """The pattern ``name`` for frame ``frame_index`` (only the non-repetitive rosette depends on it)."""
    if name not in PATTERNS:
        raise ValueError(f"unknown LiDAR pattern {name!r} (choose from {', '.join(PATTERNS)})")
    return _rosette(frame_index) if name == "rosette" else _fixed_pattern(name)


# ---------------------------------------------------------------------------------------------- casting
@dataclass
class SweepHits:
    """Per ray of a pattern: hit distance (inf = none), surface id, world origin and world direction."""

    t: np.ndarray  # N float32
    ids: np.ndarray  # N int32 (SKY = no hit)
    origin: np.ndarray  # N x 3 float64
    D: np.ndarray  # N x 3 float32


def _yaw(T: np.ndarray) -> float:
    return float(np.arctan2(T[1, 0], T[0, 0]))


def _prim_bounds(prims: list[Prim], o_lo: np.ndarray, o_hi: np.ndarray, yaw_ref: float):
    """Per primitive (vectorised): azimuth interval (rel. to ``yaw_ref``), elevation interval, flags.

    Bounds hold for a sensor anywhere in the box ``o_lo .. o_hi``: the set of vectors from such a
    sensor to the primitive's box is the Minkowski difference (again a box), whose corners bound them.
    """
    lo = np.array([p.lo for p in prims], np.float64).reshape(-1, 3)
    hi = np.array([p.hi for p in prims], np.float64).reshape(-1, 3)
    x0, x1 = lo[:, 0] - o_hi[0], hi[:, 0] - o_lo[0]
    y0, y1 = lo[:, 1] - o_hi[1], hi[:, 1] - o_lo[1]
    dmin = np.hypot(np.maximum.reduce([x0, np.zeros_like(x0), -x1]), np.maximum.reduce([y0, 0 * y0, -y1]))
    cx = np.stack([x0, x0, x1, x1], 1)
    cy = np.stack([y0, y1, y0, y1], 1)
    dmax = np.hypot(cx, cy).max(1)
    hz, lz = hi[:, 2] - o_lo[2], lo[:, 2] - o_hi[2]
    emax = np.arctan2(hz, np.where(hz > 0, dmin, dmax))
    emin = np.arctan2(lz, np.where(lz < 0, dmin, dmax))
    az = np.arctan2(cy, cx) - yaw_ref
    ac = np.arctan2(np.sin(az).mean(1), np.cos(az).mean(1))
    rel = np.arctan2(np.sin(az - ac[:, None]), np.cos(az - ac[:, None]))
    a0, a1 = ac + rel.min(1), ac + rel.max(1)
    full = (dmin < 0.5) | (a1 - a0 > np.pi)
    return a0, a1, emin, emax, full, dmin


def cast_sweep(
    pattern: ScanPattern, pose_at: Callable[[int], np.ndarray], prims: list[Prim], far_m: float
) -> SweepHits:
    """Cast every slice of ``pattern`` from ``pose_at(slice.time_ns)`` (4x4 ``T_world_sensor``, level)."""
    n = pattern.dirs.shape[0]
    t_out = np.full(n, np.inf, np.float32)
    id_out = np.full(n, SKY, np.int32)
    o_out = np.empty((n, 3), np.float64)
    d_out = np.empty((n, 3), np.float32)
    poses = [pose_at(s.time_ns) for s in pattern.slices]
    origins = np.array([T[:3, 3] for T in poses])
    yaw_ref = _yaw(poses[0])
    if prims:
        a0, a1, emin, emax, full, dmin = _prim_bounds(prims, origins.min(0), origins.max(0), yaw_ref)
        near = dmin <= far_m
    for s, T in zip(pattern.slices, poses, strict=True):
        R = T[:3, :3].astype(np.float32)
        o = T[:3, 3].astype(np.float32)
        D = pattern.dirs[s.idx] @ R.T  # R x C x 3 world directions
        t, ids = ground(o, D)
        ids[t > far_m] = SKY
        t[t > far_m] = np.inf
        if prims:
            _cast_prims(s, o, D, t, ids, prims, (a0, a1, emin, emax, full, near), _yaw(T) - yaw_ref, far_m)
        flat = s.idx.reshape(-1)
        t_out[flat], id_out[flat] = t.reshape(-1), ids.reshape(-1)
        o_out[flat] = T[:3, 3]
        d_out[flat] = D.reshape(-1, 3)
    return SweepHits(t_out, id_out, o_out, d_out)


def _cast_prims(s: Slice, o, D, t, ids, prims, bounds, dyaw: float, far_m: float) -> None:
    a0, a1, emin, emax, full, near = bounds
    s0, s1 = s.col_az[0] + dyaw, s.col_az[-1] + dyaw
    el_lo, el_hi = s.row_el[:, 0].min(), s.row_el[:, 1].max()
    hit_az = full.copy()
    for k in (-_TWO_PI, 0.0, _TWO_PI):
        hit_az |= (a0 + k <= s1 + _PAD_RAD) & (a1 + k >= s0 - _PAD_RAD)
    cand = np.flatnonzero(near & hit_az & (emin <= el_hi + _PAD_RAD) & (emax >= el_lo - _PAD_RAD))
    inv = None
    for pid in cand:
        rows = np.flatnonzero(
            (s.row_el[:, 1] >= emin[pid] - _PAD_RAD) & (s.row_el[:, 0] <= emax[pid] + _PAD_RAD)
        )
        if rows.size == 0:
            continue
        rs = slice(int(rows[0]), int(rows[-1]) + 1)
        if full[pid]:
            col_ranges = [(0, s.col_az.size)]
        else:
            col_ranges = []
            for k in (-_TWO_PI, 0.0, _TWO_PI):
                j0 = int(np.searchsorted(s.col_az, a0[pid] + k - dyaw - _PAD_RAD, "left"))
                j1 = int(np.searchsorted(s.col_az, a1[pid] + k - dyaw + _PAD_RAD, "right"))
                if j1 > j0:
                    col_ranges.append((j0, j1))
        p = prims[pid]
        for j0, j1 in col_ranges:
            cs = slice(j0, j1)
            Dr = D[rs, cs]
            if p.kind == BOX:
                if inv is None:
                    with np.errstate(divide="ignore"):
                        inv = np.float32(1.0) / D
                th = hit_box(o, inv[rs, cs], p.lo, p.hi)
            elif p.kind == CYLINDER:
                th = hit_cylinder(o, Dr, p.lo, p.hi)
            elif p.kind == ELLIPSOID:
                th = hit_ellipsoid(o, Dr, p.lo, p.hi)
            else:
                raise ValueError(f"unknown primitive kind {p.kind}")
            tb = t[rs, cs]
            m = (th < tb) & (th <= far_m)
            tb[m] = th[m]
            ids[rs, cs][m] = pid


# ---------------------------------------------------------------------------------------------- returns
LIDAR_MAX_RANGE_M = 120.0
LIDAR_RANGE_NOISE_M = 0.015


@dataclass
class Returns:
    """Detected returns of one sweep, in pattern (packet) order."""

    points: np.ndarray  # N x 4 float32 x, y, z, intensity in the sensor frame at each point's own time
    world: np.ndarray  # N x 3 float64 the measured points in the world frame
    time_ns: np.ndarray  # N int64 firing time relative to the frame stamp
    rings: np.ndarray | None  # N int16 or None
    ray: np.ndarray  # N int64 ray index into the pattern


def measure(pattern: ScanPattern, hits: SweepHits, table, rng: np.random.Generator) -> Returns:
    """Detection, dropouts, range noise and intensity of cast rays (the HDL-64E-like sensor model).

    A return is detected when its range is below ``120 m * sqrt(reflectivity * (0.3 + 0.7 cos) / 0.5)``
    (x U(0.85, 1.15)); specular surfaces lose half their returns; 0.5 % random dropouts; range noise
    sigma 1.5 cm along the ray.
    """
    from depth_nodes.data.synthetic_render import surface

    hit = np.flatnonzero((hits.ids != SKY) & (hits.t <= LIDAR_MAX_RANGE_M))
    D = hits.D[hit]
    th = hits.t[hit]
    surf = surface((hits.origin[hit] + D * th[:, None]).astype(np.float32), hits.ids[hit], table)
    cos = np.abs(np.einsum("ij,ij->i", surf.normal, D))
    refl_eff = surf.reflectivity * (0.3 + 0.7 * cos)
    r_max = np.minimum(LIDAR_MAX_RANGE_M, LIDAR_MAX_RANGE_M * np.sqrt(refl_eff / 0.5))
    u = rng.random((3, hit.size), dtype=np.float32)
    keep = (th < r_max * (0.85 + 0.3 * u[0])) & ~(surf.specular & (u[1] < 0.5)) & (u[2] > 0.005)
    rng_m = th[keep] + rng.normal(0.0, LIDAR_RANGE_NOISE_M, int(keep.sum())).astype(np.float32)
    sel = hit[keep]
    inten = np.clip(
        surf.reflectivity[keep] * (0.4 + 0.6 * cos[keep]) + rng.normal(0, 0.02, sel.size), 0.0, 1.0
    )
    pts = np.empty((sel.size, 4), np.float32)
    pts[:, :3] = pattern.dirs[sel] * rng_m[:, None]
    pts[:, 3] = inten
    world = hits.origin[sel] + hits.D[sel].astype(np.float64) * rng_m[:, None].astype(np.float64)
    rings = None if pattern.rings is None else pattern.rings[sel]
    return Returns(pts, world, pattern.time_ns[sel], rings, sel)
