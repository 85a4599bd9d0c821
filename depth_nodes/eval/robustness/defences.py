"""Cheap defences against corrupted or injected LiDAR returns, on the projected sparse depth image.

- :func:`reject_isolated_returns`: a return survives when at least ``min_support`` other returns in a
  small window (default +-2 rows, +-6 columns: the scan line and its neighbours) lie within
  ``rel_tol * d + abs_tol_m`` of its depth. Crosstalk, dust and other spurious returns land at ranges
  their neighbours do not share; a real surface is sampled by several returns. Vectorised as one
  comparison per window offset (64 image-sized operations), no per-return loop.
- :func:`consistency_filter` (LiDAR / estimate consistency): the returns are split into two interleaved
  halves (alternate returns along each image row); each half is completed by the estimator and the other half's returns are
  checked against that estimate; a return more than ``rel_tol`` (relative) *and* ``abs_tol_m`` away from
  the other half's estimate is flagged; flagged returns are re-tested against an estimate completed without
  any flagged one (a neighbour of a bad return is only contaminated by it) and dropped if they still
  disagree. Three extra completions per frame.
Neither defence can see a *dense* injection (a spoofed object of many mutually consistent returns): the
suite measures that too (``spoofing``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def reject_isolated_returns(
    sparse: np.ndarray,
    *,
    rows: int = 2,
    cols: int = 6,
    rel_tol: float = 0.1,
    abs_tol_m: float = 0.1,
    min_support: int = 1,
) -> np.ndarray:
    """``sparse`` (0 = no return) with the returns that no neighbour supports set to 0."""
    d = np.asarray(sparse, np.float32)
    h, w = d.shape
    pad = np.zeros((h + 2 * rows, w + 2 * cols), np.float32)
    pad[rows : rows + h, cols : cols + w] = d
    tol = rel_tol * d + abs_tol_m
    support = np.zeros(d.shape, np.int16)
    for dy in range(-rows, rows + 1):
        for dx in range(-cols, cols + 1):
            if dy == 0 and dx == 0:
                continue
            nb = pad[rows + dy : rows + dy + h, cols + dx : cols + dx + w]
            support += ((nb > 0) & (np.abs(nb - d) <= tol)).astype(np.int16)
    return np.where((d > 0) & (support >= min_support), d, 0.0).astype(np.float32)


def consistency_filter(
    sparse: np.ndarray,
    complete: Callable[[np.ndarray], np.ndarray],
    *,
    rel_tol: float = 0.15,
    abs_tol_m: float = 0.5,
) -> tuple[np.ndarray, float]:
    """(``sparse`` without the returns the other half's estimate contradicts, fraction dropped).

    ``complete(sparse_half) -> dense depth`` (NaN = no estimate) is the estimator under test.
    """
    d = np.asarray(sparse, np.float32)
    has = d > 0
    if not has.any():
        return d.copy(), 0.0
    # Alternate returns along each row (not pixel columns: a scan may sample every other column).
    r, c = np.nonzero(has)
    first = np.searchsorted(r, r)  # index of the row's first return (row-major order)
    even = np.zeros(d.shape, bool)
    even[r, c] = (np.arange(r.size) - first) % 2 == 0
    bad = np.zeros(d.shape, bool)
    for half in (even, ~even):
        est = complete(np.where(half, d, 0.0).astype(np.float32))
        test = has & ~half & np.isfinite(est)
        diff = np.abs(d - np.nan_to_num(est, nan=0.0))
        bad |= test & (diff > rel_tol * d) & (diff > abs_tol_m)
    if bad.any():
        # A flagged return next to a bad one may only be contaminated by it: re-test the flagged returns
        # against an estimate completed without any of them, keep those that agree.
        est = complete(np.where(bad, 0.0, d).astype(np.float32))
        diff = np.abs(d - np.nan_to_num(est, nan=0.0))
        bad &= ~np.isfinite(est) | ((diff > rel_tol * d) & (diff > abs_tol_m))
    return np.where(bad, 0.0, d).astype(np.float32), float(bad.sum() / has.sum())
