"""Image-guided classical depth completion (the default completer) and its LiDAR-only twin.

Pipeline (see ``docs/guided_completion.md``), all in inverse depth so that planes interpolate exactly:

1. **Row pass** along the LiDAR rings: short gaps between returns in an image row are interpolated, or
   split at the strongest image edge when the returns lie on different surfaces.
2. **Column pass** across the beam gaps: the same interval fill between the returns of each column, with
   a slanted-plane test (the road) and an edge-placed split at depth discontinuities.
3. **Fuse** (row pass where it has a value, else column pass), fill columns with no return from their
   neighbours, and leave everything above each column's highest return empty (NaN, confidence 0)
   unless ``extrapolate_top``.
4. **Confidence** from an error model: depth-proportional noise, plus the inverse-depth jump of the
   interval a pixel was filled across (large across discontinuities and wide gaps).

``lidar_only`` is the same code without the image (splits fall at the interval midpoints).
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.completion.base import Completer, Completion
from depth_nodes.completion.guided_rings import link_rings
from depth_nodes.completion.guided_scanline import ScanlineParams, edge_cost, fill_columns
from depth_nodes.completion.registry import register


class GuidedCompleter(Completer):
    """Scanline completion in inverse depth with image-edge-placed discontinuities.

    Parameters (pixels refer to the input resolution; defaults suit KITTI-like 1216 x 352 and
    1600 x 900 nuScenes-like frames):

    - ``use_image``: guide discontinuities with the RGB image (False = ``lidar_only``).
    - ``max_link_gap_px`` (px, None = auto): longest step between consecutive returns of a ring that is
      joined; auto = 3 x the median step between neighbouring returns (bridges missing returns).
    - ``link_rows`` (px, 1): a ring's next return is searched within this many rows up and down.
    - ``max_column_gap_px`` (px, 96): longest gap between returns in a column that is filled.
    - ``max_empty_columns_px`` (px, 16): columns with no return are interpolated from the nearest
      columns with returns when these are at most this far apart.
    - ``jump_rel`` (1, 0.06): relative inverse-depth jump below which two returns are one surface.
    - ``plane_tol_rel`` (1, 0.06): tolerance of the slanted-plane test (neighbour slope predicts jump).
    - ``edge_weight`` (px per unit edge, 20): how strongly image edges attract a discontinuity.
    - ``extrapolate_top`` (False): carry each column's highest value up to the top row (confidence
      stays low there); default leaves NaN with confidence 0 above the highest return.
    - ``extend_bottom`` (True): carry each column's lowest return down to the bottom row.
    - ``min_depth_m`` / ``max_depth_m`` (m, 0.5 / 150): output depth is clipped to this range.
    - ``noise_rel`` (1, 0.01): relative range noise of the LiDAR in the confidence model.
    - ``confidence_scale_m`` (m, 1.0): expected error that maps to confidence exp(-1).
    """

    name = "guided"
    uses_image = True

    def __init__(
        self,
        use_image: bool = True,
        max_link_gap_px: int | None = None,
        link_rows: int = 1,
        max_column_gap_px: int = 96,
        max_empty_columns_px: int = 16,
        jump_rel: float = 0.06,
        plane_tol_rel: float = 0.06,
        edge_weight: float = 20.0,
        extrapolate_top: bool = False,
        extend_bottom: bool = True,
        min_depth_m: float = 0.5,
        max_depth_m: float = 150.0,
        noise_rel: float = 0.01,
        confidence_scale_m: float = 1.0,
    ) -> None:
        if (max_link_gap_px is not None and max_link_gap_px < 1) or link_rows < 0 or max_column_gap_px < 1 or max_empty_columns_px < 0:
            raise ValueError("gap limits must be >= 1 px (max_empty_columns_px >= 0)")
        if not 0 < min_depth_m < max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {min_depth_m}, {max_depth_m}")
        if jump_rel < 0 or plane_tol_rel < 0 or edge_weight < 0 or noise_rel < 0:
            raise ValueError("jump_rel, plane_tol_rel, edge_weight and noise_rel must be >= 0")
        if confidence_scale_m <= 0:
            raise ValueError("confidence_scale_m must be > 0")
        self.uses_image = bool(use_image)
        self.name = "guided" if use_image else "lidar_only"
        self.extrapolate_top = bool(extrapolate_top)
        self.max_empty_columns_px = int(max_empty_columns_px)
        self.min_depth_m, self.max_depth_m = float(min_depth_m), float(max_depth_m)
        self.noise_rel, self.confidence_scale_m = float(noise_rel), float(confidence_scale_m)
        self.max_link_gap_px, self.link_rows = max_link_gap_px, int(link_rows)
        self.col = ScanlineParams(
            max_gap_px=int(max_column_gap_px),
            jump_rel=jump_rel,
            plane_tol_rel=plane_tol_rel,
            edge_weight=edge_weight,
            extend_end=bool(extend_bottom),
        )

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        H, W = sparse.shape
        valid = sparse > 0
        inv = np.zeros((H, W), np.float32)
        np.divide(1.0, sparse, out=inv, where=valid)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image is not None else None

        linked, _ = link_rings(
            inv,
            edge_cost(gray, (H, W), axis=1) if gray is not None else None,
            max_gap_px=self.max_link_gap_px,
            rows=self.link_rows,
            jump_rel=self.col.jump_rel,
            edge_weight=self.col.edge_weight,
        )
        col = fill_columns(linked, edge_cost(gray, (H, W)), self.col)
        support = linked > 0
        has = support.any(axis=0)
        top = np.where(has, np.argmax(support, axis=0), H)
        fused, jump = col.inv, col.jump
        self._fill_empty_columns(fused, jump, top, has)
        if self.extrapolate_top:
            _extend_up(fused, jump)

        lo, hi = np.float32(1.0 / self.max_depth_m), np.float32(1.0 / self.min_depth_m)
        ok = np.isfinite(fused) & (fused > 0)
        depth = np.full((H, W), np.nan, np.float32)
        np.divide(1.0, np.clip(fused, lo, hi), out=depth, where=ok)
        return Completion(depth, self._confidence(depth, jump, ok))

    def _fill_empty_columns(self, inv: np.ndarray, jump: np.ndarray, top: np.ndarray, has: np.ndarray) -> None:
        """Interpolate columns without returns from the nearest columns with returns, in place."""
        W = inv.shape[1]
        if has.all() or not has.any() or self.max_empty_columns_px == 0:
            return
        cols = np.arange(W)
        left = np.maximum.accumulate(np.where(has, cols, -1))
        right = np.minimum.accumulate(np.where(has, cols, W)[::-1])[::-1]
        fill = ~has & (left >= 0) & (right < W) & (right - left <= self.max_empty_columns_px + 1)
        c = np.flatnonzero(fill)
        if c.size == 0:
            return
        L, R = left[c], right[c]
        t = ((c - L) / (R - L)).astype(np.float32)
        inv[:, c] = inv[:, L] * (1 - t) + inv[:, R] * t  # NaN where either side has none
        jump[:, c] = np.maximum(jump[:, L], jump[:, R]) + np.abs(inv[:, L] - inv[:, R])
        top[c] = np.maximum(top[L], top[R])

    def _confidence(self, depth: np.ndarray, jump: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """exp(-expected_error / scale); expected error = noise_rel * d + d**2 * |inverse-depth jump| / 2."""
        d = np.where(ok, depth, 0.0)
        err = d * np.float32(self.noise_rel) + d * d * jump * np.float32(0.5)
        conf = np.exp(-err / np.float32(self.confidence_scale_m))
        conf[~ok] = 0.0
        return conf.astype(np.float32, copy=False)


def _extend_up(inv: np.ndarray, jump: np.ndarray) -> None:
    """Carry each column's highest finite value up to row 0, in place (``extrapolate_top``)."""
    finite = np.isfinite(inv)
    has = finite.any(axis=0)
    top = np.argmax(finite, axis=0)
    cols = np.flatnonzero(has)
    above = np.arange(inv.shape[0])[:, None] < top[None, cols]
    vals = inv[top[cols], cols]
    inv[:, cols] = np.where(above, vals[None, :], inv[:, cols])
    # Extrapolated pixels are marked as a full jump (confidence near zero).
    jump[:, cols] = np.where(above, vals[None, :], jump[:, cols])


@register("guided", "image-guided scanline completion in inverse depth (default); confidence from an error model")
def _guided(**params) -> GuidedCompleter:
    return GuidedCompleter(use_image=True, **params)


@register("lidar_only", "the guided completer without the image (camera lost): midpoint splits")
def _lidar_only(**params) -> GuidedCompleter:
    return GuidedCompleter(use_image=False, **params)
