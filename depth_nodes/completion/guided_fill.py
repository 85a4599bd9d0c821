"""Ring-free morphological fill in inverse depth: the near and far envelopes of the LiDAR returns.

The building blocks of ``guided`` / ``lidar_only`` (see ``docs/guided_completion.md``). Nothing here
assumes rings, scan order or a scan pattern: every step is an OpenCV order filter (dilation, closing,
median) on the sparse image, so spinning, solid-state, raster and rosette LiDARs are treated alike.

- **Near envelope**: IP-Basic's fast chain (Ku et al. 2018: diamond dilation, 5x5 closing, 7x7 hole
  fill, 5x5 median) applied to inverse depth, where a max filter prefers the nearer surface.
- **Far envelope**: the same chain on ``C - inverse depth`` (a max filter there prefers the farther
  surface).
- Larger holes (dark surfaces, dropouts) get a second, coarser pass (``hole_kernels_px``).

On a surface both envelopes agree and their mean is a linear interpolation between the nearest
returns above/below (exact on a plane in inverse depth, where the near envelope alone is biased by half
a sample spacing). At a depth edge they disagree by the jump: the mean is the L2-optimal estimate when
the side is unknown, and the spread becomes the confidence.
"""

from __future__ import annotations

import cv2
import numpy as np

DIAMOND_KERNEL_5 = np.array(
    [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], np.uint8
)
FULL_KERNEL_5 = np.ones((5, 5), np.uint8)
FULL_KERNEL_7 = np.ones((7, 7), np.uint8)
FAR_MEDIAN = False


def inverse_depth(sparse: np.ndarray) -> np.ndarray:
    """1 / depth (float32), 0 where there is no return (depth 0)."""
    # 1/0 -> inf -> 0 (THRESH_TOZERO_INV zeroes values above the threshold).
    with np.errstate(divide="ignore"):
        return cv2.threshold(np.reciprocal(sparse), 1e30, 0, cv2.THRESH_TOZERO_INV)[1]


def ipbasic_chain(key: np.ndarray, median: bool = True) -> np.ndarray:
    """IP-Basic's fast fill steps on a key image where larger wins and 0 = empty (returns a new image)."""
    out = cv2.dilate(key, DIAMOND_KERNEL_5)
    out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, FULL_KERNEL_5)
    empty = cv2.compare(out, 0, cv2.CMP_LE)
    cv2.copyTo(cv2.dilate(out, FULL_KERNEL_7), empty, out)
    return cv2.medianBlur(out, 5) if median else out


def fill_holes(
    key: np.ndarray, kernels_px: tuple[int, ...], region: np.ndarray | None = None
) -> np.ndarray | None:
    """Empty pixels of ``key`` take the max over a box of each size in turn, in place (each pass grows
    from the previous one's result; full resolution: a 4x coarser grid cost 4 % MAE on real 16-beam
    input). Passes stop once no empty pixel is left inside ``region`` (uint8 mask; None = everywhere).

    Returns the number of passes each pixel waited for (float32: 0 = filled before, ``i + 1`` = by the
    i-th box or never), or None when there was no hole."""
    level = None
    for k in kernels_px:
        empty = cv2.compare(key, 0, cv2.CMP_LE)
        if region is not None:
            empty = cv2.bitwise_and(empty, region)
        if not cv2.countNonZero(empty):
            break
        step = cv2.threshold(empty, 0, 1, cv2.THRESH_BINARY)[1]
        level = step if level is None else cv2.add(level, step)
        # Only around the holes: the big boxes are the cost, and later passes have few holes left.
        x, y, w, h = cv2.boundingRect(empty)
        r = k // 2
        x0, y0 = max(0, x - r), max(0, y - r)
        x1, y1 = min(key.shape[1], x + w + r), min(key.shape[0], y + h + r)
        grown = cv2.dilate(key[y0:y1, x0:x1], np.ones((k, k), np.uint8))
        cv2.copyTo(grown, empty[y0:y1, x0:x1], key[y0:y1, x0:x1])
    return None if level is None else level.astype(np.float32)


def _complement(a: np.ndarray, c: float) -> np.ndarray:
    """``c - a`` where ``a`` > 0, 0 elsewhere (``a`` >= 0; values of ``a`` below 1e-6 count as empty)."""
    out = cv2.addWeighted(a, -1.0, a, 0.0, c)
    return cv2.threshold(out, c - 1e-6, 0, cv2.THRESH_TOZERO_INV)[1]


def envelopes(
    inv: np.ndarray, hole_kernels_px: tuple[int, ...], region: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Near and far envelopes of the returns in ``inv`` (inverse depth, 0 = none) and the hole level
    (see :func:`fill_holes`, holes counted inside ``region``); both are grown into the holes (growing only the near one and copying it
    was as good on 64-beam KITTI but 12 % worse in MAE on its 16-beam input). Both are 0 where
    neither reaches (they share one support)."""
    c = 1.01 * float(inv.max()) + 1e-3
    near = ipbasic_chain(inv)
    far_key = ipbasic_chain(_complement(inv, c), FAR_MEDIAN)
    level = fill_holes(near, hole_kernels_px, region)
    fill_holes(far_key, hole_kernels_px, region)
    far = _complement(far_key, c)
    # One support for both (the near chain's median trims its edges): each fills the other's gaps.
    cv2.copyTo(near, cv2.compare(far, 0, cv2.CMP_LE), far)
    cv2.copyTo(far, cv2.compare(near, 0, cv2.CMP_LE), near)
    return near, far, level


def top_envelope(valid: np.ndarray, half_window_px: int) -> np.ndarray:
    """Row of the highest return within +-``half_window_px`` columns (float32; H where none)."""
    H = valid.shape[0]
    top = np.where(valid.any(axis=0), np.argmax(valid, axis=0), H).astype(np.float32)
    if half_window_px > 0:
        kernel = np.ones((1, 2 * half_window_px + 1), np.uint8)
        top = cv2.erode(top[None, :], kernel, borderType=cv2.BORDER_REPLICATE)[0]
    return top


def below_rows(shape: tuple[int, int], first_row: np.ndarray) -> np.ndarray:
    """uint8 mask (255) of the pixels at or below ``first_row`` (per column)."""
    rows = np.arange(shape[0], dtype=np.float32)[:, None]
    return ((rows >= first_row[None, :]) * np.uint8(255)).astype(np.uint8)


def clear_above(est: np.ndarray, first_row: np.ndarray) -> np.ndarray:
    """Set ``est`` to 0 above ``first_row`` (per column), in place; returns the mask of those pixels
    (only the rows down to the lowest ``first_row`` are touched)."""
    r1 = int(min(est.shape[0], max(0.0, float(first_row.max()))))
    mask = np.zeros(est.shape, bool)
    mask[:r1] = np.arange(r1, dtype=np.float32)[:, None] < first_row[None, :]
    est[:r1][mask[:r1]] = 0.0
    return mask


def extend_up(inv: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Mask of the pixels above ``top`` that were filled by carrying each column's value at ``top`` up
    to row 0 (in place; the published IP-Basic ``extrapolate``). Columns without a value are left."""
    H, W = inv.shape
    cols = np.flatnonzero(top < H)
    rows = top[cols].astype(np.intp)
    vals = inv[rows, cols]
    ok = vals > 0
    cols, vals, rows = cols[ok], vals[ok], rows[ok]
    mask = np.zeros(inv.shape, bool)
    mask[:, cols] = np.arange(H)[:, None] < rows[None, :]
    inv[:, cols] = np.where(mask[:, cols], vals[None, :], inv[:, cols])
    return mask
