"""Surface appearance of the synthetic scene: normals, albedo textures, LiDAR reflectivity, shading, sky.

Textures are procedural in world coordinates (asphalt noise, lane marks, paving tiles, facade windows,
foliage), so the camera sees edges that are depth edges (object outlines) and edges that are not
(markings, windows, tiles) as in real streets. Dark surfaces (glass, tyres, black paint) reflect little
and are specular: the LiDAR model drops many of their returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

from depth_nodes.data import synthetic_scene
from depth_nodes.data.synthetic_raycast import GROUND_CURB, GROUND_RAISED, GROUND_ROAD, SKY

SUN = np.array([0.35, 0.45, 0.82], np.float32) / np.linalg.norm([0.35, 0.45, 0.82])
HAZE = np.array([0.8, 0.84, 0.9], np.float32)
ZENITH = np.array([0.36, 0.55, 0.86], np.float32)

#: LiDAR reflectivity (0..1) per material; CAR_BODY uses the paint's brightness instead.
REFLECTIVITY = {
    synthetic_scene.ROAD: 0.22,
    synthetic_scene.CURB: 0.35,
    synthetic_scene.SIDEWALK: 0.35,
    synthetic_scene.GRASS: 0.3,
    synthetic_scene.FACADE: 0.45,
    synthetic_scene.CAR_GLASS: 0.04,
    synthetic_scene.TYRE: 0.03,
    synthetic_scene.METAL: 0.5,
    synthetic_scene.SIGN: 0.95,
    synthetic_scene.TRUNK: 0.3,
    synthetic_scene.FOLIAGE: 0.35,
    synthetic_scene.HEDGE: 0.3,
}
N_MATERIALS = 13


@lru_cache(maxsize=1)
def noise_texture() -> np.ndarray:
    """256 x 256 float32 tileable-enough value noise in [0, 1] (two octaves), fixed for all seeds."""
    rng = np.random.default_rng(12345)
    base = rng.random((256, 256)).astype(np.float32)
    coarse = gaussian_filter(base, 6.0, mode="wrap")  # wrap: the texture tiles without seams
    fine = gaussian_filter(base, 1.0, mode="wrap")
    tex = 0.6 * (coarse - coarse.min()) / np.ptp(coarse) + 0.4 * (fine - fine.min()) / np.ptp(fine)
    return tex.astype(np.float32)


def _sample(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    tex = noise_texture()
    return tex[(a * scale).astype(np.int32) & 255, (b * scale).astype(np.int32) & 255]


@dataclass
class PrimTable:
    """Per-primitive arrays for vectorised look-ups by id."""

    kind: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    material: np.ndarray
    color: np.ndarray

    @classmethod
    def of(cls, prims: list[synthetic_scene.Prim]) -> PrimTable:
        n = len(prims)
        if n == 0:
            z3 = np.zeros((1, 3), np.float32)
            return cls(np.zeros(1, np.int8), z3, z3, np.zeros(1, np.int8), z3)
        return cls(
            np.array([p.kind for p in prims], np.int8),
            np.array([p.lo for p in prims], np.float32),
            np.array([p.hi for p in prims], np.float32),
            np.array([p.material for p in prims], np.int8),
            np.array([p.color for p in prims], np.float32),
        )


@dataclass
class Surface:
    """Attributes of N hit points."""

    albedo: np.ndarray  # N x 3 float32 0..1
    normal: np.ndarray  # N x 3 float32 unit
    reflectivity: np.ndarray  # N float32 0..1
    specular: np.ndarray  # N bool (glass, tyres, windows): LiDAR drops many returns


def surface(P: np.ndarray, ids: np.ndarray, table: PrimTable) -> Surface:
    """Normals, albedo and reflectivity of hit points ``P`` (N x 3 world) on surfaces ``ids`` (N)."""
    n = P.shape[0]
    obj = ids >= 0
    oid = np.where(obj, ids, 0)
    kind = np.where(obj, table.kind[oid], -1)
    lo, hi = table.lo[oid], table.hi[oid]
    y = P[:, 1]
    # --- materials of the analytic ground
    mat = np.where(obj, table.material[oid], synthetic_scene.ROAD).astype(np.int8)
    mat[ids == GROUND_CURB] = synthetic_scene.CURB
    raised = ids == GROUND_RAISED
    mat[raised] = np.where(np.abs(y[raised]) < synthetic_scene.SIDEWALK_OUTER_M, synthetic_scene.SIDEWALK, synthetic_scene.GRASS)
    # --- normals
    nrm = np.zeros((n, 3), np.float32)
    nrm[:, 2] = 1.0
    curb = ids == GROUND_CURB
    nrm[curb] = 0.0
    nrm[curb, 1] = -np.sign(y[curb])
    box = kind == synthetic_scene.BOX
    if box.any():
        p, a, b = P[box], lo[box], hi[box]
        dlo, dhi = np.abs(p - a), np.abs(p - b)
        d = np.minimum(dlo, dhi)
        axis = d.argmin(axis=1)
        r = np.arange(axis.size)
        nb = np.zeros_like(p)
        nb[r, axis] = np.where(dlo[r, axis] < dhi[r, axis], -1.0, 1.0)
        nrm[box] = nb
    cyl = kind == synthetic_scene.CYLINDER
    if cyl.any():
        p, a, b = P[cyl], lo[cyl], hi[cyl]
        c = (a + b) / 2
        rad = np.maximum((b[:, 0] - a[:, 0]) / 2, 1e-6)
        nc = np.zeros_like(p)
        nc[:, 0] = (p[:, 0] - c[:, 0]) / rad
        nc[:, 1] = (p[:, 1] - c[:, 1]) / rad
        top = p[:, 2] >= b[:, 2] - 2e-3
        nc[top] = (0.0, 0.0, 1.0)
        nrm[cyl] = nc
    ell = kind == synthetic_scene.ELLIPSOID
    if ell.any():
        p, a, b = P[ell], lo[ell], hi[ell]
        rad = (b - a) / 2
        nrm[ell] = (p - (a + b) / 2) / (rad * rad)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-9)
    # --- texture coordinates on the face: the two axes orthogonal to the dominant normal axis
    dom = np.abs(nrm).argmax(axis=1)
    ta = np.where(dom == 0, P[:, 1], P[:, 0])
    tb = np.where(dom == 2, P[:, 1], P[:, 2])
    tex = _sample(ta, tb, 12.0)
    albedo = np.empty((n, 3), np.float32)
    refl = np.empty(n, np.float32)
    spec = np.zeros(n, bool)
    for m in np.unique(mat):
        sel = mat == m
        a, b, t = ta[sel], tb[sel], tex[sel]
        col = table.color[oid[sel]]
        r = np.full(a.shape, REFLECTIVITY.get(int(m), 0.3), np.float32)
        sp = np.zeros(a.shape, bool)
        if m == synthetic_scene.ROAD:
            yy = P[sel, 1]
            base = 0.3 + 0.12 * (t - 0.5) + np.where(np.abs(yy) > 3.6, -0.03, 0.0)
            c = np.repeat(base[:, None], 3, axis=1)
            dash = (np.abs(yy) < 0.08) & (np.mod(P[sel, 0], 10.0) < 4.0)
            edge = np.abs(np.abs(yy) - 3.5) < 0.08
            mark = dash | edge
            c[mark] = 0.85 + 0.05 * t[mark, None]
            r[mark] = 0.7
        elif m == synthetic_scene.SIDEWALK:
            tile = (np.mod(a, 1.0) < 0.03) | (np.mod(b, 1.0) < 0.03)
            base = np.where(tile, 0.38, 0.55 + 0.1 * (t - 0.5))
            c = np.stack([base, base * 0.98, base * 0.95], axis=1)
        elif m == synthetic_scene.CURB:
            c = np.repeat((0.62 + 0.1 * (t - 0.5))[:, None], 3, axis=1)
        elif m == synthetic_scene.GRASS:
            c = np.array([0.22, 0.36, 0.12], np.float32) * (0.6 + 0.8 * t[:, None])
        elif m == synthetic_scene.FACADE:
            u = np.mod(a, 3.0)
            v = np.mod(b, 3.3)
            win = (u > 0.7) & (u < 2.1) & (v > 1.0) & (v < 2.5) & (b > 0.9) & (dom[sel] != 2)
            c = col * (0.85 + 0.3 * t[:, None])
            c[win] = np.array([0.08, 0.1, 0.14], np.float32) + 0.1 * t[win, None]
            r[win], sp[win] = 0.04, True
        elif m == synthetic_scene.CAR_BODY:
            c = col * (0.92 + 0.16 * t[:, None])
            r[:] = 0.05 + 0.7 * col.mean(axis=1)
            sp = col.mean(axis=1) < 0.15
        elif m == synthetic_scene.CAR_GLASS:
            roof = dom[sel] == 2
            c = np.where(roof[:, None], col, np.array([0.06, 0.07, 0.09], np.float32) + 0.06 * t[:, None])
            r = np.where(roof, 0.05 + 0.7 * col.mean(axis=1), 0.04).astype(np.float32)
            sp = ~roof
        elif m == synthetic_scene.TYRE:
            c = np.repeat((0.03 + 0.03 * t)[:, None], 3, axis=1)
            sp[:] = True
        elif m in (synthetic_scene.FOLIAGE, synthetic_scene.HEDGE):
            leaf = _sample(a + b, b - a, 40.0)
            c = col * (0.5 + 1.0 * leaf[:, None])
        else:  # METAL, SIGN, TRUNK
            c = col * (0.85 + 0.3 * t[:, None])
        albedo[sel] = c
        refl[sel] = r
        spec[sel] = sp
    return Surface(np.clip(albedo, 0, 1), nrm, refl, spec)


def sky_color(D: np.ndarray) -> np.ndarray:
    """Sky gradient from the ray's elevation (N x 3 directions, any length)."""
    e = D[:, 2] / np.linalg.norm(D, axis=1)
    w = np.clip(e * 3.0, 0.0, 1.0)[:, None]
    return HAZE * (1 - w) + ZENITH * w


def shade(surf: Surface, D: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Lambert + ambient shading with distance haze; normals are flipped to face the viewer."""
    n = surf.normal
    facing = np.einsum("ij,ij->i", n, D) > 0
    n = np.where(facing[:, None], -n, n)
    lam = np.clip(n @ SUN, 0.0, 1.0)
    rgb = surf.albedo * (0.45 + 0.6 * lam)[:, None]
    fog = (1.0 - np.exp(-dist / 350.0))[:, None]
    return rgb * (1 - fog) + HAZE * fog


def render_image(grid, table: PrimTable, rng: np.random.Generator, noise_sigma: float = 2.0) -> np.ndarray:
    """RGB uint8 image of a cast :class:`CameraGrid`."""
    H, W = grid.t.shape
    ids = grid.ids.reshape(-1)
    D = grid.D.reshape(-1, 3)
    hit = np.flatnonzero(ids != SKY)
    rgb = sky_color(D)
    if hit.size:
        P = grid.o + D[hit] * grid.t.reshape(-1)[hit, None]
        surf = surface(P, ids[hit], table)
        dist = grid.t.reshape(-1)[hit] * np.linalg.norm(D[hit], axis=1)
        rgb[hit] = shade(surf, D[hit], dist)
    img = rgb.reshape(H, W, 3) * 255.0 + rng.normal(0.0, noise_sigma, (H, W, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


__all__ = ["PrimTable", "Surface", "surface", "render_image", "sky_color", "shade", "GROUND_ROAD"]
