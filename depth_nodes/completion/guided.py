"""Classical depth completion, ring-free (the default completer, ``guided``) and its LiDAR-only twin.

Pipeline (see ``docs/guided_completion.md``), all in inverse depth (a plane's inverse depth is affine
in the pixel coordinates, so averaging there interpolates planes exactly):

1. **Near and far envelopes** of the returns (``guided_fill``): IP-Basic's morphological fill chain on
   inverse depth (max filters prefer the nearer surface) and on its complement (the farther surface),
   plus coarser passes for large holes. No ring, scan order or scan pattern is assumed.
2. **Estimate** = their mean: a linear interpolation on a surface, the L2-optimal hedge across a depth
   edge whose side is unknown; then IP-Basic's 5x5 Gaussian, normalised over the estimated pixels. Opt-in (``colour_margin`` > 0, ``guided`` only): in the edge bands a
   pixel whose colour clearly matches one side's returns takes that side (``guided_image``). It is
   off by default because on accumulated real GT it did not pay (the docs give the numbers), so
   ``guided`` and ``lidar_only`` give the same result with the defaults.
3. **Returns kept exactly**; **above the LiDAR's top envelope** (the highest return within
   +-``top_window_px`` columns) NaN with confidence 0, unless ``extrapolate=True`` (as IP-Basic's
   option: the fill's own reach kept, then each column's top value carried up to row 0, low confidence).
4. **Confidence** ``1 / (1 + e / confidence_scale_m)`` with the expected error
   ``e = d**2 * (noise_inv + spread / 2)`` (m), ``spread`` the near-far disagreement (inverse depth; an
   inverse-depth error ``di`` is a depth error ``d**2 di``), larger for hole-filled pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.completion.base import Completer, Completion
from depth_nodes.completion.guided_fill import (
    DepthKeys,
    below_rows,
    clear_above,
    envelopes,
    extend_up,
    first_rows,
    inverse_depth,
    top_envelope,
)
from depth_nodes.completion.guided_image import ImageParams, refine_edges

#: Spread (relative to the value) added per coarse hole pass a pixel waited for, and given to the
#: upward extrapolation: their error grows with the distance to the returns.
HOLE_SPREAD_REL = 0.1
EXTRAPOLATED_SPREAD_REL = 0.5
#: Auto ``hole_grid_px``: full resolution up to this many pixels, a 2x grid up to the next, else 4x.
AUTO_GRID_FULL_PX = 600_000
AUTO_GRID_HALF_PX = 1_500_000


class GuidedCompleter(Completer):
    """Ring-free completion in inverse depth: the mean of the near/far morphological envelopes.

    Parameters (pixels refer to the input resolution):

    - ``use_image`` (True): ``guided`` (the camera is expected; its image is used by the opt-in colour
      refinement) or ``lidar_only`` (False).
    - ``extrapolate`` (False): estimates above the LiDAR's top envelope (the fill's own reach, then each
      column's top value carried up to row 0, low confidence), as IP-Basic's ``extrapolate`` option;
      for benchmark comparisons. Default: NaN (confidence 0) there.
    - ``top_window_px`` (px, 12): the top envelope is the highest return within +-this many columns (a
      column between two returns of a tilted top scan line is filled up to them).
    - ``hole_kernels_px`` (px, (15, 31, 63)): box sizes of the coarse passes that fill holes the IP-Basic
      chain leaves (dark surfaces, dropouts, sparse LiDARs); () = none.
    - ``hole_grid_px`` (px, 0 = auto): the hole passes run on every n-th pixel (max-pooled) with n x
      smaller boxes. Auto: 1 up to 0.6 MP (KITTI's 1216x352: full resolution), 2 up to 1.5 MP (720p), 4
      above (1080p: 1.37x -> 1.08x ip_basic's time on PandaSet, MAE/RMSE within +-2 % on 64-beam scans,
      up to +10 % on 16-beam input; docs/guided_completion.md).
    - ``near_reach_px`` (px, 0): opt-in, pixels within this distance of a return of the near surface
      take the near envelope (foreground wins at silhouettes): -1..-4 % MAE on spinning LiDARs, +5 %
      RMSE on the ring-less PandarGT, hence off.
    - ``blur_px`` (px, 5): size of the final Gaussian (IP-Basic's), normalised over the estimated
      pixels; returns are kept exactly. 0 = off.
    - ``edge_rel`` (1, 0.1): near/far relative disagreement above which a pixel is in a depth-edge band.
    - ``colour_margin`` (1, 0 = off): opt-in colour refinement of the edge bands: a side is taken when
      its colour distance is below this fraction of the other side's (0.1-0.25 tried; see the docs).
    - ``colour_window_px`` (px, 15): window of the per-side colour statistics of that refinement.
    - ``min_depth_m`` / ``max_depth_m`` (m, 0.5 / 500): estimates are clipped to this range (a safety
      net: they are means of returns); returns are kept as measured.
    - ``noise_inv`` (1/m, 0.002): inverse-depth noise floor of the confidence model.
    - ``confidence_scale_m`` (m, 1.0): expected error (m) that maps to confidence 0.5.
    """

    name = "guided"
    uses_image = True
    keeps_returns = True  # returns are written exactly; a changed one was dropped (see-through)

    def __init__(
        self,
        use_image: bool = True,
        extrapolate: bool = False,
        top_window_px: int = 12,
        hole_kernels_px: tuple[int, ...] = (15, 31, 63),
        hole_grid_px: int = 0,
        edge_rel: float = 0.1,
        colour_window_px: int = 15,
        colour_margin: float = 0.0,
        near_reach_px: int = 0,
        blur_px: int = 5,
        min_depth_m: float = 0.5,
        max_depth_m: float = 500.0,
        noise_inv: float = 0.002,
        confidence_scale_m: float = 1.0,
    ) -> None:
        if not 0 < min_depth_m < max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {min_depth_m}, {max_depth_m}")
        if top_window_px < 0:
            raise ValueError(f"top_window_px must be >= 0, got {top_window_px}")
        if blur_px < 0 or (blur_px > 0 and blur_px % 2 == 0):
            raise ValueError(f"blur_px must be 0 (off) or an odd size, got {blur_px}")
        kernels = tuple(int(k) for k in hole_kernels_px)
        if any(k < 3 or k % 2 == 0 for k in kernels):
            raise ValueError(f"hole_kernels_px must be odd sizes >= 3, got {hole_kernels_px}")
        if min(edge_rel, noise_inv, colour_margin, near_reach_px) < 0 or colour_window_px < 1:
            raise ValueError(
                "edge_rel, noise_inv, colour_margin, near_reach_px >= 0 and colour_window_px >= 1 needed"
            )
        if confidence_scale_m <= 0:
            raise ValueError("confidence_scale_m must be > 0")
        self.uses_image = bool(use_image)
        self.name = "guided" if use_image else "lidar_only"
        self.extrapolate = bool(extrapolate)
        self.use_colour = self.uses_image and colour_margin > 0
        self.edge_rel = float(edge_rel)
        self.near_reach_px = int(near_reach_px)
        self.blur_px = int(blur_px)
        self.top_window_px = int(top_window_px)
        self.hole_kernels_px = kernels
        if hole_grid_px < 0:
            raise ValueError(f"hole_grid_px must be >= 0 (0 = auto), got {hole_grid_px}")
        self.hole_grid_px = int(hole_grid_px)
        self.image_params = ImageParams(
            edge_rel=float(edge_rel), window_px=int(colour_window_px), margin=float(colour_margin)
        )
        self.min_depth_m, self.max_depth_m = float(min_depth_m), float(max_depth_m)
        self.noise_inv, self.confidence_scale_m = float(noise_inv), float(confidence_scale_m)
        self.keys = DepthKeys(self.min_depth_m, self.max_depth_m)

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        H, W = sparse.shape
        depth = np.full((H, W), np.nan, np.float32)
        conf = np.zeros((H, W), np.float32)
        hit = sparse.ravel() > 0
        first = int(np.argmax(hit))
        if not hit[first]:
            return Completion(depth, conf)
        # Rows above the highest return are only reached by extrapolation: work on the rows below.
        r0 = first // W
        block = sparse[r0:]
        inv, conf_b = self._complete_rows(
            block, image[r0:] if self.use_colour and image is not None else None, self._hole_grid((H, W))
        )
        empty = cv2.compare(inv, 0, cv2.CMP_LE)
        inv = cv2.min(cv2.max(inv, 1.0 / self.max_depth_m), 1.0 / self.min_depth_m)
        out = cv2.divide(1.0, inv)
        cv2.copyTo(np.full_like(out, np.nan), empty, out)
        cv2.copyTo(block, cv2.compare(block, 0, cv2.CMP_GT), out)  # returns kept even beyond the clip
        depth[r0:], conf[r0:] = out, conf_b
        if self.extrapolate and r0 > 0:  # extend_up filled the block's first row where possible
            depth[:r0] = depth[r0]
            inv_top = np.nan_to_num(np.reciprocal(depth[r0]), nan=0.0)[None, :]
            conf[:r0] = self._confidence(inv_top, inv_top * np.float32(EXTRAPOLATED_SPREAD_REL))
        return Completion(depth, conf)

    def _complete_rows(
        self, sparse: np.ndarray, image: np.ndarray | None, grid: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inverse depth (0 = no estimate) and confidence of a block of rows starting at the top return."""
        inv = inverse_depth(sparse)
        valid = cv2.compare(inv, 0, cv2.CMP_GT)
        top = top_envelope(valid.view(bool), self.top_window_px)
        # Holes only count below the top envelope (above it everything is cleared, unless extrapolating).
        region = None if self.extrapolate else below_rows(inv.shape, top)
        near, far, level = envelopes(self.keys.encode(inv), self.keys, self.hole_kernels_px, region, grid)
        est = cv2.add(near, far)
        est *= np.float32(0.5)
        spread = cv2.absdiff(near, far)  # (medians and hole passes can cross the envelopes)
        if self.near_reach_px > 0:
            # Foreground wins next to its own returns (LiDAR/camera parallax shows the background just
            # past a silhouette): helps spinning LiDARs a little, hurts dense noisy ones (see the docs).
            k = 2 * self.near_reach_px + 1
            adj = cv2.dilate(inv, np.ones((k, k), np.uint8))
            np.copyto(est, near, where=(adj > 0) & (adj >= near * np.float32(1 - self.edge_rel)))
        if image is not None:
            refine_edges(est, spread, near, far, inv, image, self.image_params)
        if self.blur_px > 0:
            # IP-Basic's final 5x5 Gaussian, normalised over the pixels with an estimate (holes and the
            # top must not pull values towards 0): a hedge across the remaining edges and a denoiser on
            # surfaces; on accumulated real GT -5 % MAE / -10 % RMSE (docs). Returns are re-set below.
            k = (self.blur_px, self.blur_px)
            num = cv2.GaussianBlur(est, k, 0)
            den = cv2.GaussianBlur(cv2.threshold(est, 0, 1, cv2.THRESH_BINARY)[1], k, 0)
            smooth = cv2.patchNaNs(cv2.divide(num, den), 0.0)  # 0 / 0 far from every estimate
            # What the blur moved a pixel by is uncertainty too (large where it mixes two surfaces).
            spread = cv2.scaleAdd(cv2.absdiff(smooth, est), 2.0, spread)
            cv2.copyTo(smooth, cv2.compare(est, 0, cv2.CMP_GT), est)
        if level is not None:  # hole-filled pixels: error grows with the pass that reached them
            spread = cv2.scaleAdd(cv2.multiply(est, level, dtype=cv2.CV_32F), HOLE_SPREAD_REL, spread)
        if self.extrapolate:
            # The fill's own reach above the top is kept, the rest carried up (low confidence).
            above = np.zeros(est.shape, bool)
            r1 = int(min(est.shape[0], top.max()))
            above[:r1] = np.arange(r1, dtype=np.float32)[:, None] < top[None, :]
            first = first_rows(est > 0)
            above |= extend_up(est, first)
            spread[above] = est[above] * np.float32(EXTRAPOLATED_SPREAD_REL)
        else:
            clear_above(est, top)
        cv2.copyTo(inv, valid, est)  # LiDAR returns are kept exactly
        spread = cv2.copyTo(np.zeros_like(spread), valid, spread)
        return est, self._confidence(est, spread)

    def _hole_grid(self, shape: tuple[int, int]) -> int:
        """Grid step of the hole passes for an image of ``shape`` (``hole_grid_px``, or auto by size:
        their cost grows with the pixel count, their accuracy needs little resolution far from returns)."""
        if self.hole_grid_px > 0:
            return self.hole_grid_px
        pixels = shape[0] * shape[1]
        return 1 if pixels <= AUTO_GRID_FULL_PX else 2 if pixels <= AUTO_GRID_HALF_PX else 4

    def _confidence(self, inv: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """1 / (1 + e / scale) with the expected error e = d**2 * (noise_inv + spread / 2) (metres),
        i.e. inv**2 / (inv**2 + (noise_inv + spread / 2) / scale); 0 where inv is 0. (A rational
        function instead of exp(-e / scale): same ranking, so the same AUSE, at a third of the cost.)"""
        inv2 = cv2.multiply(inv, inv)
        b = spread * np.float32(0.5 / self.confidence_scale_m)
        b += np.float32(self.noise_inv / self.confidence_scale_m)
        return cv2.divide(inv2, cv2.add(inv2, b))  # 0 / b = 0 where inv is 0
