"""Scanline interval fill: the 1-D core of the guided completer.

Along every column of an H x W inverse-depth image (0 = no sample), each pair of consecutive samples
bounds an *interval*. An interval is either

- **continuous** (same surface): filled by linear interpolation of inverse depth, which is exact for any
  plane (a plane's inverse depth is an affine function of the pixel coordinates), or
- **a discontinuity** (the samples lie on different surfaces): split in two, each pixel taking the value
  of the sample it is nearer to in *geodesic* distance ``pixels + lam * (image edge cost crossed)``, so the
  split lands on the strongest image edge between the two samples (a midpoint split without an image).

Same surface means: small relative jump in inverse depth, or a jump predicted by the slope of the
neighbouring interval above or below (a slanted plane such as the road sampled by sparse rings).

Work is per *sample* (tens of thousands) plus four full-image passes (scatter, running max, three
gathers), all vectorised. Horizontal filling runs the same code on transposed arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScanlineParams:
    """Parameters of one scanline pass (lengths in pixels along the scan direction)."""

    #: Longest interval that is filled; longer gaps stay empty (NaN).
    max_gap_px: int = 64
    #: Relative inverse-depth jump below which two samples are always the same surface.
    jump_rel: float = 0.06
    #: Relative mismatch allowed when a neighbour interval's slope predicts the jump (slanted planes).
    plane_tol_rel: float = 0.06
    #: Neighbour intervals shorter than this give too noisy a slope to vouch for a plane.
    min_slope_gap_px: int = 2
    #: Weight of the image edge cost against pixel distance in the geodesic split.
    edge_weight: float = 1.0
    #: Below the last sample of a line: False -> NaN; True -> carry the last sample's value on.
    extend_end: bool = False


@dataclass
class ScanlineFill:
    """Result of a pass: ``inv`` H x W float32 inverse depth (NaN = not filled) and per-pixel cues."""

    inv: np.ndarray
    #: |inverse-depth jump| of the interval a pixel lies in (0 on samples), for the confidence.
    jump: np.ndarray
    #: True where the pixel lies in a split (discontinuity) interval.
    split: np.ndarray


def edge_cost(gray: np.ndarray | None, shape: tuple[int, int], axis: int = 0, power: float = 2.0) -> np.ndarray:
    """Cumulative image edge cost along ``axis``: ``C[y] = sum_{k<y} |I[k+1] - I[k]|**power`` (axis 0).

    The cost between rows ``a < b`` of a column is ``C[b] - C[a]`` (columns for ``axis=1``). ``gray``
    None -> zeros (no image). Intensity steps are in 1/255 units, so one full-contrast edge costs 1.
    """
    if gray is None:
        return np.zeros(shape, np.float32)
    g = np.abs(np.diff(gray.astype(np.float32), axis=axis))
    g *= np.float32(1.0 / 255.0)
    if power == 2.0:
        np.multiply(g, g, out=g)
    elif power != 1.0:
        np.power(g, np.float32(power), out=g)
    out = np.empty(shape, np.float32)
    if axis == 0:
        out[0] = 0.0
        np.cumsum(g, axis=0, out=out[1:])
    else:
        out[:, 0] = 0.0
        np.cumsum(g, axis=1, out=out[:, 1:])
    return out


def fill_columns(inv: np.ndarray, cost: np.ndarray, p: ScanlineParams) -> ScanlineFill:
    """Fill each column of ``inv`` (H x W float32 inverse depth, 0 = none) between its samples.

    ``cost`` is :func:`edge_cost` of the guide image (same shape). Pixels above a column's first sample
    stay NaN; below its last sample they stay NaN unless ``p.extend_end``.
    """
    H, W = inv.shape
    valid_t = inv.T > 0
    idx_cm = np.flatnonzero(valid_t)  # column-major order: samples of a column are consecutive, top first
    n = idx_cm.size
    if n == 0:
        nan = np.full((H, W), np.nan, np.float32)
        return ScanlineFill(nan, np.zeros((H, W), np.float32), np.zeros((H, W), bool))
    xs, ys = np.divmod(idx_cm, H)
    flat = ys * W + xs
    v = inv.ravel().take(flat)
    c = cost.ravel().take(flat)
    yf = ys.astype(np.float32)

    # Interval i joins sample i (top, "a") to sample i + 1 (bottom, "b") when both are in one column.
    nxt = np.minimum(np.arange(1, n + 1), n - 1)
    vb, cb, yb = v[nxt], c[nxt], yf[nxt]
    gap = yb - yf
    ok = (xs[nxt] == xs) & (gap > 0) & (gap <= p.max_gap_px)
    ok[-1] = False
    gap_safe = np.where(ok, gap, 1.0).astype(np.float32)
    slope = (vb - v) / gap_safe
    vmax = np.maximum(v, vb)
    dv = np.abs(vb - v)
    same = dv <= p.jump_rel * vmax

    # A slanted plane: the neighbour interval's slope predicts this one's jump.
    long_enough = ok & (gap >= p.min_slope_gap_px)
    prv = np.maximum(np.arange(-1, n - 1), 0)
    prev_ok = long_enough[prv] & (np.arange(n) > 0)
    next_ok = long_enough[nxt] & (np.arange(n) < n - 1)
    tol = p.plane_tol_rel * vmax
    planar_prev = prev_ok & (np.abs(v + slope[prv] * gap - vb) <= tol)
    planar_next = next_ok & (np.abs(vb - slope[nxt] * gap - v) <= tol)
    cont = ok & (same | planar_prev | planar_next)
    split = ok & ~cont

    # Per-interval branch coefficients: value(y) = A[2i + b] + S[2i + b] * y, b = 1 below the split.
    A = np.full(2 * n + 2, np.nan, np.float32)
    S = np.zeros(2 * n + 2, np.float32)
    A0 = np.where(cont, v - slope * yf, np.where(split, v, np.nan))
    if p.extend_end:
        # Past a line's last sample: continue the slope of the interval above when it is one surface.
        end_slope = np.where(cont[prv] & prev_ok, slope[prv], 0.0)
        A0 = np.where(ok, A0, v - end_slope * yf)
        S0 = np.where(cont, slope, np.where(ok, 0.0, end_slope))
    else:
        S0 = np.where(cont, slope, 0.0)
    A[0 : 2 * n : 2] = A0
    S[0 : 2 * n : 2] = S0
    A[1 : 2 * n : 2] = np.where(split, vb, np.nan)
    # Split threshold in units of Q = 2y + 2*w*C: pixel is below when Q >= ya + yb + w*(Ca + Cb).
    w = np.float32(p.edge_weight)
    T = np.full(n + 1, np.inf, np.float32)
    T[:n] = np.where(split, yf + yb + w * (c + cb), np.inf)
    J = np.zeros(n + 1, np.float32)
    J[:n] = np.where(ok, dv, 0.0)

    # Per pixel: the interval it lies in = the last sample at or above it in its column.
    M = np.full(H * W, -1, np.int32)
    M[flat] = np.arange(n, dtype=np.int32)
    K = np.maximum.accumulate(M.reshape(H, W), axis=0)
    rows = np.arange(H, dtype=np.float32)[:, None]
    Kn = np.where(K < 0, n, K)  # n = sentinel interval (NaN)
    Q = cost * (2 * w) + 2 * rows
    Tk = T.take(Kn)
    below = Q >= Tk
    m = 2 * Kn + below
    out = A.take(m) + S.take(m) * rows
    out.ravel()[flat] = v  # samples are kept exactly (also the last one of a line)
    jump = J.take(Kn)
    jump.ravel()[flat] = 0.0
    return ScanlineFill(out, jump, Tk < np.inf)
