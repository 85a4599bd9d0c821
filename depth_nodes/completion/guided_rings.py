"""Ring linking: join each LiDAR return to the next return of its ring and draw the segment between them.

A spinning LiDAR samples the scene along rings that appear in the image as nearly horizontal curves,
one return every 1-4 px, with 5-60 px between rings. The completer first turns every ring into a
continuous 1-px polyline: each return is linked to the nearest return to its right within
``max_gap_px`` columns and ``rows`` rows (the same ring, since rings are further apart than that), and
the pixels between them are filled by linear interpolation of inverse depth (exact on planes). Where
the two returns lie on different surfaces (relative inverse-depth jump above ``jump_rel``) the segment
is split at the strongest image edge between them (geodesic nearest return, as in the column pass).
"""

from __future__ import annotations

import numpy as np


def next_right(valid: np.ndarray) -> np.ndarray:
    """For each pixel, the column of the first valid pixel strictly to its right in its row (W if none)."""
    H, W = valid.shape
    cols = np.where(valid, np.arange(W, dtype=np.int32)[None, :], np.int32(W))
    out = np.empty((H, W), np.int32)
    out[:, -1] = W
    # Running minimum from the right, shifted by one so that the pixel itself is excluded.
    out[:, :-1] = np.minimum.accumulate(cols[:, :0:-1], axis=1)[:, ::-1]
    return out


def link_rings(
    inv: np.ndarray,
    cost_h: np.ndarray | None,
    max_gap_px: int | None = None,
    rows: int = 1,
    jump_rel: float = 0.06,
    edge_weight: float = 20.0,
    gap_factor: float = 3.0,
    min_auto_gap_px: int = 4,
) -> tuple[np.ndarray, int]:
    """Return ``inv`` (H x W inverse depth, 0 = none) with the ring segments drawn in, and the link count.

    ``cost_h`` is the cumulative horizontal edge cost along rows (H x W, see ``edge_cost`` on the
    transposed image), or None (no image: splits at the midpoint). ``max_gap_px`` None adapts the
    longest link to the sensor: ``gap_factor`` x the median step between neighbouring returns of a ring
    (so that a couple of missing returns in a row are bridged at any LiDAR/camera resolution).
    """
    H, W = inv.shape
    valid = inv > 0
    flat = np.flatnonzero(valid)
    if flat.size < 2:
        return inv.copy(), 0
    ys, xs = np.divmod(flat.astype(np.int32), np.int32(W))
    nr = next_right(valid)
    # Candidate partner in rows y-rows..y+rows; keep the one with the smallest column step.
    best_x = np.full(flat.size, W, np.int32)
    best_y = ys.copy()
    for dy in [0] + [s * k for k in range(1, rows + 1) for s in (-1, 1)]:
        yy = ys + dy
        inside = (yy >= 0) & (yy < H)
        cand = np.full(flat.size, W, np.int32)
        # The partner must be strictly right of the return (same row) or at >= its column (other rows).
        xq = xs if dy == 0 else np.maximum(xs - 1, 0)
        cand[inside] = nr[yy[inside], xq[inside]]
        if dy != 0:
            cand = np.where(cand <= xs, W, cand)  # a return below/above in the same column is not a link
        better = cand < best_x
        best_x = np.where(better, cand, best_x)
        best_y = np.where(better, yy, best_y)
    dx = best_x - xs
    found = best_x < W
    if max_gap_px is None:
        steps = dx[found]
        steps = steps[steps <= 64]
        med = float(np.median(steps)) if steps.size else 1.0
        max_gap_px = int(np.clip(np.ceil(gap_factor * med), min_auto_gap_px, 64))
    link = found & (dx >= 2) & (dx <= max_gap_px)
    i = np.flatnonzero(link)
    if i.size == 0:
        return inv.copy(), 0
    x0, y0, dx = xs[i], ys[i], dx[i]
    y1 = best_y[i]
    v0 = inv.ravel()[flat[i]]
    v1 = inv[y1, best_x[i]]
    split = np.abs(v1 - v0) > jump_rel * np.maximum(v0, v1)

    # Rasterise the segments: pixel k = 1..dx-1 of each link.
    counts = dx - 1
    seg = np.repeat(np.arange(i.size, dtype=np.int32), counts)
    starts = np.cumsum(counts) - counts
    k = np.arange(seg.size, dtype=np.int32) - np.repeat(starts, counts).astype(np.int32) + 1
    t = k.astype(np.float32) / dx[seg].astype(np.float32)
    px = x0[seg] + k
    py = np.rint(y0[seg] + t * (y1 - y0)[seg]).astype(np.int32)
    val = v0[seg] + t * (v1 - v0)[seg]
    s = split[seg]
    if s.any():
        xb = x0[seg] + dx[seg]
        if cost_h is not None and edge_weight > 0:
            w = np.float32(edge_weight)
            c0 = cost_h[y0[seg], x0[seg]]
            c1 = cost_h[y0[seg], xb]
            ck = cost_h[y0[seg], px]
            far = 2 * px + 2 * w * ck >= x0[seg] + xb + w * (c0 + c1)
        else:
            far = 2 * px >= x0[seg] + xb
        val = np.where(s, np.where(far, v1[seg], v0[seg]), val)
    out = inv.copy()
    dst = py * W + px
    free = out.ravel()[dst] == 0  # never overwrite a real return
    out.ravel()[dst[free]] = val[free]
    return out, int(i.size)
