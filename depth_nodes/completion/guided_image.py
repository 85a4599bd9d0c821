"""Image refinement of the depth-edge bands of ``guided`` (where the near and far envelopes disagree).

In a band the LiDAR alone cannot tell on which side of the edge a pixel lies; the estimate there is
the near/far mean (a hedge). The image decides where it clearly can: the returns outside the bands
(inside a surface: LiDAR see-through and parallax returns sit in the bands and carry the other side's
colour) are split into a near and a far side (above / below the mid-range of the returns in their
``window_px`` box), each side's mean colour in that box is computed with box filters (normalised
convolution), and a band pixel whose colour distance to one side is below ``margin`` x its distance to
the other takes that side's envelope value; the others keep the hedge.

Opt-in (``colour_margin`` > 0): on accumulated real GT it did not pay (the colour of the side that the
GT picks is no better predicted than chance at band pixels; see ``docs/guided_completion.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ImageParams:
    edge_rel: float = 0.1
    window_px: int = 15
    margin: float = 0.25
    interior: bool = True


def refine_edges(
    est: np.ndarray,
    spread: np.ndarray,
    near: np.ndarray,
    far: np.ndarray,
    inv: np.ndarray,
    image: np.ndarray,
    p: ImageParams,
) -> None:
    """Refine ``est``/``spread`` (in place) in the band where ``spread > edge_rel * near``."""
    band = spread > np.float32(p.edge_rel) * near
    if not band.any():
        return
    valid = (inv > 0) & ~band if p.interior else inv > 0
    # Each return's side: above or below the mid-range of the returns in its window.
    k = (p.window_px, p.window_px)
    box = np.ones(k, np.uint8)
    c = np.float32(1.01 * float(inv.max()) + 1e-3)
    hi = cv2.dilate(inv, box)
    lo = c - cv2.dilate(np.where(inv > 0, c - inv, 0).astype(np.float32), box)
    mid = (hi + lo) * np.float32(0.5)
    side_near = (valid & (inv >= mid)).astype(np.float32)
    side_far = (valid & (inv < mid)).astype(np.float32)
    img = image.astype(np.float32)
    n_near = cv2.boxFilter(side_near, -1, k, normalize=False)
    n_far = cv2.boxFilter(side_far, -1, k, normalize=False)
    c_near = cv2.boxFilter(img * side_near[..., None], -1, k, normalize=False)
    c_far = cv2.boxFilter(img * side_far[..., None], -1, k, normalize=False)
    ys, xs = np.nonzero(band & (n_near > 0) & (n_far > 0))
    pix = img[ys, xs]
    d_near = ((pix - c_near[ys, xs] / n_near[ys, xs, None]) ** 2).sum(axis=1)
    d_far = ((pix - c_far[ys, xs] / n_far[ys, xs, None]) ** 2).sum(axis=1)
    m = np.float32(p.margin)
    take_near = d_near < m * d_far
    take_far = d_far < m * d_near
    yn, xn = ys[take_near], xs[take_near]
    yf, xf = ys[take_far], xs[take_far]
    # (The medians of the two chains can swap the envelopes next to an edge: take the larger / smaller.)
    est[yn, xn] = np.maximum(near[yn, xn], far[yn, xn])
    est[yf, xf] = np.minimum(near[yf, xf], far[yf, xf])
    # Picking a side halves the expected error only if the pick is right: keep half the spread.
    spread[yn, xn] *= np.float32(0.5)
    spread[yf, xf] *= np.float32(0.5)
