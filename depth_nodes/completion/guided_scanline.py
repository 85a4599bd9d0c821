"""Scanline interval fill: the 1-D core of the guided completer.

Along every column of an H x W inverse-depth image (0 = no sample), each pair of consecutive samples
bounds an *interval*. An interval is either

- **continuous** (same surface): filled by linear interpolation of inverse depth, which is exact for any
  plane (a plane's inverse depth is an affine function of the pixel coordinates), or
- **a discontinuity** (the samples lie on different surfaces): split in two, each pixel taking the
  surface of the sample it is nearer to in *geodesic* distance ``pixels + edge_weight * (image edge cost
  crossed)``, so the split lands on the strong image edges between the two samples (at the midpoint
  without an image). Each side continues the slope of its neighbouring interval when that one is a
  plane (the road running up to a car), else it is constant.

Same surface means: a small relative jump in inverse depth, or a jump predicted by the slope of the
neighbouring interval above or below (a slanted plane such as the road sampled by sparse rings).

Work is per *sample* (tens of thousands) plus a handful of full-image passes. Instead of a running
maximum down each column (slow in numpy), the interval index of every pixel comes from an integral
image of the sample mask (``cv2.integral``): the count of samples at or above a pixel in its column,
plus the column's offset in the column-major sample list.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
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
    #: Weight of the image edge cost against pixel distance in the geodesic split (px per unit cost).
    edge_weight: float = 20.0
    #: Below the last sample of a line: False -> NaN; True -> continue it (slope of a plane, else constant).
    extend_end: bool = False
    #: Above a line's first sample: continue a receding plane (inverse depth falling towards the line's
    #: start, e.g. the road towards the horizon) measured by the first interval; else NaN.
    extend_start_plane: bool = False
    #: Above a line's first sample: carry its value this many pixels further (0 = none).
    start_margin_px: int = 0
    #: ... up to this multiple of the first sample's depth.
    max_start_ratio: float = 2.0
    #: ... and only when its inverse depth falls by at least this fraction per pixel (slanted, e.g. road).
    min_start_slope_rel: float = 0.005
    #: Split branches continue the slope of the neighbouring plane (else constant).
    extend_split: bool = True
    #: Intervals alone in their column count as continuous when their slope is the ground's (+-tol).
    ground_prior: bool = True
    ground_tol_rel: float = 0.15
    #: Fraction of a split interval moved from the midpoint towards the farther sample (0..0.5).
    foreground_bias: float = 0.0
    #: A far sample right below an image edge of at least this cost, with at most half of it between
    #: it and the near sample below, is a parallax see-through return (0 = off).
    see_through_edge: float = 0.0


@dataclass
class ScanlineFill:
    """Result of a pass: ``inv`` H x W float32 inverse depth (NaN = not filled) and per-pixel cues."""

    inv: np.ndarray
    #: |inverse-depth jump| of the interval a pixel lies in (0 on samples), for the confidence.
    jump: np.ndarray
    #: Row of each column's first sample (H where the column has none).
    top: np.ndarray
    #: First row with an estimate per column (< top where a plane was continued upwards).
    start: np.ndarray
    #: True where the pixel lies in a split (discontinuity) interval.
    split: np.ndarray | None = None
    #: Flat indices of samples overridden as parallax see-through (see ``see_through_edge``).
    dropped: np.ndarray | None = None


def edge_lut(power: float = 2.0) -> np.ndarray:
    """uint8 intensity step -> float32 edge cost ``(step / 255) ** power`` (a full-contrast edge costs 1)."""
    return ((np.arange(256, dtype=np.float64) / 255.0) ** power).astype(np.float32)


def column_edge_cost(image: np.ndarray | None, lut: np.ndarray) -> np.ndarray | None:
    """Cumulative edge cost down each column, ``C[y] = sum_{k<y} cost(|I[k+1] - I[k]|)`` (H x W float32).

    ``image`` is H x W x 3 uint8 RGB (or H x W gray); the step of a pixel pair is the luminance-weighted
    sum of the per-channel absolute differences, so colour edges of equal brightness count too. The
    cost between rows ``a < b`` of a column is ``C[b] - C[a]``. None -> None (no image).
    """
    if image is None:
        return None
    if image.shape[0] < 2:  # a single row: no vertical steps (cv2.absdiff of empty arrays is None)
        return np.zeros(image.shape[:2], np.float32)
    step = cv2.absdiff(image[1:], image[:-1])
    if step.ndim == 3:
        step = cv2.cvtColor(step, cv2.COLOR_RGB2GRAY)
    g = cv2.LUT(step, lut)
    # Column cumulative sums via the integral image (numpy's cumsum along axis 0 is ~5x slower).
    s = cv2.integral(g, sdepth=cv2.CV_32F)  # H x (W + 1): rows < y, columns < x
    return cv2.subtract(s[:, 1:], s[:, :-1])


def _next(x: np.ndarray, fill=None) -> np.ndarray:
    """``x[i + 1]`` (the last element repeated, or ``fill``); a shifted copy beats a fancy-index gather."""
    out = np.empty_like(x)
    out[:-1] = x[1:]
    out[-1] = x[-1] if fill is None else fill
    return out


def _prev(x: np.ndarray, fill=None) -> np.ndarray:
    """``x[i - 1]`` (the first element repeated, or ``fill``)."""
    out = np.empty_like(x)
    out[1:] = x[:-1]
    out[0] = x[0] if fill is None else fill
    return out


def fill_columns(inv: np.ndarray, cost: np.ndarray | None, p: ScanlineParams) -> ScanlineFill:
    """Fill each column of ``inv`` (H x W float32 inverse depth, 0 = none) between its samples.

    ``cost`` is :func:`column_edge_cost` of the guide image or None. Pixels above a column's first
    sample stay NaN; below its last sample they stay NaN unless ``p.extend_end``.
    """
    H, W = inv.shape
    valid = (inv > 0).view(np.uint8)
    # Column-major order (a column's samples consecutive, top first); cv2.transpose + flatnonzero on
    # bool is several times faster than numpy's flatnonzero of the strided valid.T.
    idx_cm = np.flatnonzero(cv2.transpose(valid).view(bool))
    n = idx_cm.size
    if n == 0:
        empty = np.full((H, W), np.nan, np.float32)
        return ScanlineFill(
            empty, np.zeros((H, W), np.float32), np.full(W, H, np.int64), np.full(W, H, np.int64)
        )
    xs, ys = np.divmod(idx_cm, H)
    flat = ys * W + xs
    v = inv.ravel().take(flat)
    yf = ys.astype(np.float32)
    c = cost.ravel().take(flat) if cost is not None else np.zeros(n, np.float32)

    # Interval i joins sample i (top, "a") to sample i + 1 (bottom, "b") when both are in one column.
    ar = np.arange(n)
    vb, cb, yb = _next(v), _next(c), _next(yf)
    gap = yb - yf
    ok = (_next(xs) == xs) & (gap > 0) & (gap <= p.max_gap_px)
    ok[-1] = False
    slope = (vb - v) / np.where(ok, gap, 1.0).astype(np.float32)
    vmax = np.maximum(v, vb)
    dv = np.abs(vb - v)
    same = dv <= p.jump_rel * vmax

    # A slanted plane: the neighbour interval's slope predicts this one's jump.
    long_enough = ok & (gap >= p.min_slope_gap_px)
    prev_ok = _prev(long_enough, False)
    next_ok = _next(long_enough, False)
    slope_prev, slope_next = _prev(slope), _next(slope)
    tol = p.plane_tol_rel * vmax
    planar_prev = prev_ok & (np.abs(v + slope_prev * gap - vb) <= tol)
    planar_next = next_ok & (np.abs(vb - slope_next * gap - v) <= tol)
    cont = ok & (same | planar_prev | planar_next)
    if p.ground_prior:
        # The ground's inverse depth has one slope per image row step over the whole image (a flat road
        # seen by a pinhole camera). Intervals without neighbour evidence (alone in their column, e.g.
        # next to dropouts) are taken as continuous when their slope matches it.
        evidence = cont & long_enough & (planar_prev | planar_next) & (slope > p.min_start_slope_rel * v)
        if np.count_nonzero(evidence) >= 20:
            ev = slope[evidence]
            g = np.float32(np.partition(ev, ev.size // 2)[ev.size // 2])  # median, O(n)
            alone = ok & ~prev_ok & ~next_ok
            cont |= alone & (np.abs(slope - g) <= np.float32(p.ground_tol_rel) * g)
    split = ok & ~cont

    # Split branches continue the surface on their side: the slope of the neighbouring interval when
    # that one is a reliable plane, limited so that the branch never passes the other side's value.
    if p.extend_split:
        lim_lo, lim_hi = np.minimum(slope, 0.0), np.maximum(slope, 0.0)
        cont_prev = _prev(cont, False)
        s_up = np.where(cont_prev & prev_ok, np.clip(slope_prev, lim_lo, lim_hi), 0.0)
        s_dn = np.where(_next(cont, False) & next_ok, np.clip(slope_next, lim_lo, lim_hi), 0.0)
    else:
        s_up = s_dn = np.zeros(n, np.float32)
    A0 = np.where(cont, v - slope * yf, np.where(split, v - s_up * yf, np.nan))
    S0 = np.where(cont, slope, s_up)
    if p.extend_end:  # past a line's last sample: continue the plane above, else constant
        end_slope = np.where(_prev(cont, False) & prev_ok, slope_prev, 0.0)
        A0 = np.where(ok, A0, v - end_slope * yf)
        S0 = np.where(ok, S0, end_slope)

    # Extended interval list: a sentinel (NaN, never split) before each column's samples, so that
    # pixels above a column's first sample land on it. Position of sample i: i + xs[i] + 1.
    m = n + W
    pos = ar + xs + 1
    A = np.full(2 * m, np.nan, np.float32)
    S = np.zeros(2 * m, np.float32)
    T = np.full(m, np.inf, np.float32)
    J = np.zeros(m, np.float32)
    A[2 * pos] = A0
    first = np.ones(n, bool)
    first[1:] = xs[1:] != xs[:-1]
    start_row = np.full(W, H, np.int64)
    if p.start_margin_px > 0:
        # Above a line's first sample: its value is carried up by start_margin_px rows.
        f = np.flatnonzero(first)
        A[2 * (pos[f] - 1)] = v[f]
        start_row[xs[f]] = np.maximum(ys[f] - p.start_margin_px, 0)
    if p.extend_start_plane:
        # A first interval that is a receding plane (the road) is continued further upwards, until the
        # depth would exceed max_start_ratio x the first sample's.
        receding = slope > p.min_start_slope_rel * v  # a slanted plane, not a noisy upright one
        f = np.flatnonzero(first & cont & long_enough & receding)
        A[2 * (pos[f] - 1)] = v[f] - slope[f] * yf[f]
        S[2 * (pos[f] - 1)] = slope[f]
        run = v[f] * (1.0 - 1.0 / p.max_start_ratio) / slope[f]
        plane_row = np.maximum(np.ceil(yf[f] - run), 0).astype(np.int64)
        start_row[xs[f]] = np.minimum(start_row[xs[f]], plane_row)
    S[2 * pos] = S0
    A[2 * pos + 1] = np.where(split, vb - s_dn * yb, np.nan)
    S[2 * pos + 1] = np.where(split, s_dn, 0.0)
    # Split test in units of Q = 2y + 2w*C(y): a pixel is below the split when Q >= ya + yb + w*(Ca + Cb).
    w = np.float32(p.edge_weight)
    # Foreground bias: the boundary moves towards the farther sample by foreground_bias x gap (LiDAR
    # returns next to a silhouette are missing on the background side: parallax and occlusion filter).
    bias = np.float32(2 * p.foreground_bias) * np.where(vb > v, -gap, gap)
    T[pos] = np.where(split, yf + yb + w * (c + cb) + bias, np.inf)
    see_through = np.zeros(n, bool)
    if cost is not None and p.see_through_edge > 0:
        # Parallax see-through: the LiDAR (mounted apart from the camera) sees the far background
        # just past a near object's silhouette, where the camera still sees the object. Such a far
        # sample sits right below a strong image edge and looks like the near sample below it (no
        # edge between them): it is the near surface's pixel, the whole interval takes that side.
        step_a = c - cost.ravel().take(np.maximum(flat - W, 0))
        see_through = split & (vb > v) & (ys > 0) & (step_a >= p.see_through_edge) & (cb - c <= 0.5 * step_a)
        T[pos[see_through]] = -np.inf
    J[pos] = np.where(ok, dv, 0.0)

    # Per pixel: position of the last sample at or above it in its column (or the column's sentinel).
    integ = cv2.integral(valid)  # (H+1) x (W+1) int32: samples in rows < y, columns < x
    count = cv2.subtract(integ[1:, 1:], integ[1:, :-1])  # samples at or above (y, x) in column x
    base = (integ[H, :-1] + np.arange(W, dtype=np.int32)).astype(np.int32)  # sentinel of column x
    K = count
    K += base  # numpy broadcasts in place; cv2.add would materialise the broadcast
    rows = np.arange(H, dtype=np.float32)[:, None]
    # Paired tables gathered at once (complex64 = two float32): (T, J) by interval, (A, S) by branch.
    TJ = np.empty(m, np.complex64)
    TJ.real, TJ.imag = T, J
    tj = TJ.take(K)
    Tk = tj.real
    if cost is not None:
        Q = cost * np.float32(2 * w)
        Q += 2 * rows
    else:
        Q = np.broadcast_to(2 * rows, (H, W))
    below = (Q >= Tk).view(np.uint8)
    mk = 2 * K + below
    AS = np.empty(2 * m, np.complex64)
    AS.real, AS.imag = A, S
    a_s = AS.take(mk)
    out = a_s.imag * rows
    out += a_s.real
    out.ravel()[flat] = v  # samples are kept exactly (also the last one of a line)
    jump = np.ascontiguousarray(tj.imag)
    jump.ravel()[flat] = 0.0
    top = np.full(W, H, np.int64)
    top[xs[first]] = ys[first]
    start = np.minimum(top, start_row)
    split_px = Tk < np.inf
    split_px.ravel()[flat] = False  # samples themselves are measurements, not fills
    dropped = flat[see_through]
    if dropped.size:
        st = np.flatnonzero(see_through)
        out.ravel()[dropped] = A[2 * pos[st] + 1] + S[2 * pos[st] + 1] * yf[st]  # the near branch
        jump.ravel()[dropped] = dv[st]
        split_px.ravel()[dropped] = True
    return ScanlineFill(out, jump, top, start, split_px, dropped)
