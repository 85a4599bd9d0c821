"""Image-guided classical depth completion (the default completer) and its LiDAR-only twin.

Pipeline (see ``docs/guided_completion.md``), all in inverse depth so that planes interpolate exactly:

1. **Ring linking** (``guided_rings``): each return is joined to the next return of its ring and the
   segment between them is drawn (linear in inverse depth; split at the strongest image edges when
   the two returns lie on different surfaces). Rings become continuous polylines.
2. **Column pass** (``guided_scanline``) across the beam gaps, on every other column: between
   consecutive polyline pixels of a column, linear interpolation when they are one surface (small jump,
   or a slanted plane such as the road, recognised by the slope of the neighbouring interval), else a
   split at the image edges with each side continuing its own plane.
3. **Odd columns** from their two neighbours (mean when they agree, else the side of closer colour),
   columns without returns from the nearest columns with returns; LiDAR returns are kept exactly.
   Nothing is estimated above the LiDAR's local top envelope (the highest return within
   +-``top_window_px`` columns): NaN with confidence 0 there, unless asked (``top_margin_px``,
   ``top_plane_extension``, ``extrapolate_top``). A far sample just below an image edge that looks
   like the near surface below it is a parallax see-through return and takes that surface.
4. **Confidence** ``exp(-e / confidence_scale_m)`` from an expected error
   ``e = d**2 * (noise_inv + |jump| / 2)``: the inverse-depth jump of the interval a pixel was filled
   across (large across discontinuities, wide gaps) mapped to metres by ``d**2``.

``lidar_only`` is the same code without the image (splits at interval midpoints).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from depth_nodes.completion.base import Completer, Completion
from depth_nodes.completion.guided_rings import link_rings, row_edge_cost
from depth_nodes.completion.guided_scanline import ScanlineParams, column_edge_cost, edge_lut, fill_columns
from depth_nodes.completion.registry import register

#: Rows above the highest return (beyond ``top_margin_px``) still processed, for planes continued upwards.
TOP_ALLOWANCE_PX = 24
#: Below the local top envelope, a column's top value is carried up at most this many rows above its
#: own top return (the ring's rounding to rows; further up, only row neighbours fill).
TOP_CARRY_PX = 2


class GuidedCompleter(Completer):
    """Scanline completion in inverse depth with image-edge-placed discontinuities.

    Parameters (pixels refer to the input resolution; the defaults suit KITTI-like 1216 x 352 frames
    and adapt to sparser LiDARs through the automatic link gap):

    - ``use_image`` (True): guide discontinuities with the RGB image (False = ``lidar_only``).
    - ``max_link_gap_px`` (px, None = auto): longest step between consecutive returns of a ring that is
      joined; auto = ``link_gap_factor`` x the median step between neighbouring returns.
    - ``link_gap_factor`` (1, 5): the auto link gap in median return steps. Long enough to bridge
      runs of missing returns (dark or far surfaces, dropouts); a link between two surfaces is split
      at the image edges, so bridging does not mix them.
    - ``link_rows`` (px, None = auto): a ring's next return is searched this many rows up and down;
      auto = a third of the median step between returns along a row, 1..4 (tilted rings).
    - ``max_column_gap_px`` (px, 96): longest gap between returns in a column that is filled.
    - ``max_empty_columns_px`` (px, 16): a run of columns without returns is interpolated from its
      neighbours when it is at most this wide.
    - ``column_stride`` (1 or 2, 2): the column pass runs on every ``column_stride``-th column; odd
      columns come from their neighbours (image-guided at discontinuities). 1 = every column (slower).
    - ``jump_rel`` (1, 0.10): relative inverse-depth jump below which two returns are one surface.
    - ``plane_tol_rel`` (1, 0.10): tolerance of the slanted-plane test (neighbour slope predicts jump).
    - ``edge_weight`` (px per unit edge cost, 200): how strongly image edges attract a discontinuity.
    - ``edge_power`` (1, 1): edge cost of an intensity step = (step / 255) ** power; higher favours the
      strongest edge over texture.
    - ``foreground_bias`` (1, 0.1): move splits towards the farther return by this fraction of the gap.
    - ``top_window_px`` (px, 32): no estimate above the highest return within +-``top_window_px``
      columns (the LiDAR's local top envelope: a column whose own top return is missing or lower is
      filled up to its neighbours' top); above: NaN with confidence 0. 0 (with ``top_margin_px`` 0):
      strictly nothing above each column's own highest return.
    - ``top_margin_px`` (px, 0): opt-in, estimates reach this many rows above that envelope.
    - ``top_plane_extension`` (False): opt-in, a receding plane (the road towards the horizon) whose
      top interval is slanted is continued above the envelope, up to twice its top return's depth.
    - ``max_hole_row_gap_px`` (px, 32): holes below that envelope are filled from the nearest estimates
      left and right in their row within this distance.
    - ``max_split_row_gap_px`` (px, 12): pixels filled across a discontinuity take the row interpolation
      when their nearest reliable left/right estimates (within this distance) agree and the column
      choice does not (a dark window above a dark car roof).
    - ``end_extension_px`` (px, None = auto): a return not linked on one side (a chain end) carries
      its value this far along its row; auto = the median step between returns, 1..8.
    - ``see_through_edge`` (unit edge cost, 0.05): parallax see-through filter (image only). The LiDAR,
      mounted apart from the camera, sees the background just past a near object's silhouette where
      the camera still sees the object. A far ring sample right below an image edge of at least this
      cost, with at most half of it between it and the near sample below, is taken as the near
      surface's pixel (the return is not kept). 0 = off.
    - ``drop_far_spikes`` (True): a return much farther (>30 %) than both its ring neighbours (which
      agree) is dropped as a see-through/parallax artefact; nearer spikes (thin obstacles) are kept.
    - ``extrapolate_top`` (False): carry each column's highest value up to the top row (with low
      confidence).
    - ``extend_bottom`` (True): continue each column's lowest surface down to the bottom row.
    - ``min_depth_m`` / ``max_depth_m`` (m, 0.5 / 150): output depth is clipped to this range.
    - ``noise_inv`` (1/m, 0.002): inverse-depth noise floor of the confidence model.
    - ``confidence_scale_m`` (m, 1.0): expected error (m) that maps to confidence exp(-1).
    """

    name = "guided"
    uses_image = True
    keeps_returns = True  # returns are written exactly; a changed one was dropped (see-through)

    def __init__(
        self,
        use_image: bool = True,
        max_link_gap_px: int | None = None,
        link_gap_factor: float = 5.0,
        link_rows: int | None = None,
        max_column_gap_px: int = 96,
        max_empty_columns_px: int = 16,
        column_stride: int = 2,
        jump_rel: float = 0.10,
        plane_tol_rel: float = 0.10,
        edge_weight: float = 200.0,
        edge_power: float = 1.0,
        extrapolate_top: bool = False,
        extend_bottom: bool = True,
        min_depth_m: float = 0.5,
        max_depth_m: float = 150.0,
        noise_inv: float = 0.002,
        top_window_px: int = 32,
        top_margin_px: int = 0,
        top_plane_extension: bool = False,
        max_hole_row_gap_px: int = 32,
        max_split_row_gap_px: int = 12,
        end_extension_px: int | None = None,
        drop_far_spikes: bool = True,
        foreground_bias: float = 0.1,
        see_through_edge: float = 0.05,
        confidence_scale_m: float = 1.0,
    ) -> None:
        if max_link_gap_px is not None and max_link_gap_px < 1:
            raise ValueError(f"max_link_gap_px must be >= 1 or None, got {max_link_gap_px}")
        if (link_rows is not None and link_rows < 0) or max_column_gap_px < 1 or max_empty_columns_px < 0:
            raise ValueError("link_rows >= 0, max_column_gap_px >= 1 and max_empty_columns_px >= 0 required")
        if column_stride not in (1, 2):
            raise ValueError(f"column_stride must be 1 or 2, got {column_stride}")
        if not 0 < min_depth_m < max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {min_depth_m}, {max_depth_m}")
        if min(jump_rel, plane_tol_rel, edge_weight, noise_inv) < 0 or edge_power <= 0:
            raise ValueError("jump_rel, plane_tol_rel, edge_weight, noise_inv must be >= 0, edge_power > 0")
        if confidence_scale_m <= 0:
            raise ValueError("confidence_scale_m must be > 0")
        self.uses_image = bool(use_image)
        self.name = "guided" if use_image else "lidar_only"
        self.max_link_gap_px, self.link_rows = max_link_gap_px, link_rows
        self.link_gap_factor = float(link_gap_factor)
        self.max_empty_columns_px = int(max_empty_columns_px)
        self.column_stride = int(column_stride)
        self.extrapolate_top = bool(extrapolate_top)
        self.top_window_px = int(top_window_px)
        self.top_margin_px = int(top_margin_px)
        self.top_plane_extension = bool(top_plane_extension)
        self.max_hole_row_gap_px = int(max_hole_row_gap_px)
        self.max_split_row_gap_px = int(max_split_row_gap_px)
        self.end_extension_px = None if end_extension_px is None else int(end_extension_px)
        self.drop_far_spikes = bool(drop_far_spikes)
        self.min_depth_m, self.max_depth_m = float(min_depth_m), float(max_depth_m)
        self.noise_inv, self.confidence_scale_m = float(noise_inv), float(confidence_scale_m)
        self._lut = edge_lut(edge_power)
        self.col = ScanlineParams(
            max_gap_px=int(max_column_gap_px),
            jump_rel=float(jump_rel),
            plane_tol_rel=float(plane_tol_rel),
            edge_weight=float(edge_weight),
            extend_end=bool(extend_bottom),
            extend_start_plane=bool(top_plane_extension),
            start_margin_px=int(top_margin_px),
            foreground_bias=float(foreground_bias),
            see_through_edge=float(see_through_edge),
        )

    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        # Rows far above the highest return can get no estimate (unless extrapolate_top): work on the
        # rows below (on KITTI's crop the top ~quarter is above the LiDAR's field of view).
        H, W = sparse.shape
        first = int(np.argmax(sparse.ravel() > 0)) // W
        allowance = TOP_ALLOWANCE_PX if self.top_plane_extension else 0
        r0 = 0 if self.extrapolate_top else max(0, first - self.top_margin_px - allowance)
        depth = np.empty((H, W), np.float32)
        conf = np.empty((H, W), np.float32)
        depth[:r0], conf[:r0] = np.nan, 0.0
        inv, conf[r0:] = self._complete_rows(sparse[r0:], image[r0:] if image is not None else None)
        lo, hi = np.float32(1.0 / self.max_depth_m), np.float32(1.0 / self.min_depth_m)
        np.clip(inv, lo, hi, out=inv)
        cv2.divide(1.0, inv, dst=depth[r0:])  # NaN (no estimate) stays NaN
        return Completion(depth, conf)

    def _complete_rows(self, sparse: np.ndarray, image: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The pipeline on a block of rows: (inverse depth with NaN = no estimate, confidence)."""
        H, W = sparse.shape
        # Inverse depth; no return (0) -> inf -> 0 (THRESH_TOZERO_INV zeroes values above the threshold).
        inv = cv2.threshold(cv2.divide(1.0, sparse), 1e30, 0, cv2.THRESH_TOZERO_INV)[1]
        linked, raw = link_rings(
            inv,
            row_edge_cost(image, self._lut),
            max_gap_px=self.max_link_gap_px,
            gap_factor=self.link_gap_factor,
            rows=self.link_rows,
            jump_rel=self.col.jump_rel,
            edge_weight=self.col.edge_weight,
            foreground_bias=self.col.foreground_bias,
            end_extension_px=self.end_extension_px,
            drop_far_spikes=self.drop_far_spikes,
        )
        stride = self.column_stride if W >= 4 else 1
        lk, img = (_even_columns(linked), _even_columns(image)) if stride == 2 else (linked, image)
        col = fill_columns(lk, column_edge_cost(img, self._lut), self.col)
        fused, jump = col.inv, col.jump
        _fill_empty_columns(fused, jump, col.top, self.max_empty_columns_px // stride)
        env = None
        if self.top_window_px > 0:
            env = _envelope(col.top, max(1, self.top_window_px // stride)) - np.float32(self.top_margin_px)
            _clip_above(fused, np.maximum(env, col.start))
        elif self.top_margin_px > 0:
            _clip_above(fused, col.start.astype(np.float32))
        if self.extrapolate_top:
            _extend_up(fused, jump)
        conf = self._confidence(fused, jump)
        # Row-direction second opinions, on the (even-column) grid of the column pass.
        if col.split is not None:
            _row_second_opinions(
                fused,
                conf,
                col.split,
                env if self.max_hole_row_gap_px > 0 else None,
                col.top,
                img,
                self.max_split_row_gap_px // stride,
                self.max_hole_row_gap_px // stride,
                self.col.jump_rel,
                self._conf_of,
            )
        if stride == 2:
            fused, conf = _fill_odd_columns(fused, conf, image, W, self.col.jump_rel, self._conf_of)
        if col.dropped is not None and col.dropped.size:
            raw = _without_see_through(raw, col.dropped, fused, inv, stride, W, self.col.jump_rel)
        fused.ravel()[raw] = inv.ravel()[raw]  # LiDAR returns are kept exactly (odd columns too)
        if self.top_window_px == 0 and self.top_margin_px == 0 and not self.extrapolate_top:
            # Strict: nothing above each column's highest LiDAR return (ring links bridge gaps, so they
            # could reach above it); a column without returns takes the lower of its neighbours' tops.
            top = _raw_top(inv > 0)
            _clip_above(fused, top)
            conf[np.isnan(fused)] = 0.0
        return fused, conf

    def _conf_of(self, inv: np.ndarray, jump: np.ndarray) -> np.ndarray:
        """Confidence of sparse values (1-D arrays), same model as :meth:`_confidence`."""
        err = (np.float32(self.noise_inv) + np.float32(0.5) * jump) / (inv * inv)
        out = np.exp(-err / np.float32(self.confidence_scale_m)).astype(np.float32)
        return np.nan_to_num(out, nan=0.0)

    def _confidence(self, inv: np.ndarray, jump: np.ndarray) -> np.ndarray:
        """exp(-e / scale) with e = d**2 * (noise_inv + |jump| / 2) (metres); 0 where inv is NaN."""
        err = cv2.scaleAdd(jump, 0.5, np.full_like(jump, self.noise_inv))
        err = cv2.divide(err, cv2.multiply(inv, inv), scale=-1.0 / self.confidence_scale_m)
        conf = cv2.exp(err)
        cv2.patchNaNs(conf, 0.0)  # no estimate -> confidence 0
        return conf


def _even_columns(a: np.ndarray | None) -> np.ndarray | None:
    """Columns 0, 2, 4, ... as a contiguous array (cv2.resize nearest picks exactly these for even W)."""
    if a is None:
        return None
    H, W = a.shape[:2]
    if W % 2 == 0:
        return cv2.resize(a, (W // 2, H), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(a[:, ::2])


def _fill_odd_columns(
    even: np.ndarray,
    conf_e: np.ndarray,
    image: np.ndarray | None,
    W: int,
    jump_rel: float,
    conf_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Full-width inverse depth and confidence from the even columns.

    An odd column takes the mean of its two neighbours (inverse depth) where they agree within
    ``jump_rel`` (and the lower of their confidences); where they disagree (a depth edge) it copies the
    neighbour of closer image intensity (the left one without an image), so an edge moves by at most one
    pixel, and its confidence accounts for the jump. NaN where either neighbour is NaN.
    """
    H, We = even.shape
    n_pair = min(W // 2, We - 1)  # odd columns with an even column on both sides
    L, R = even[:, :n_pair], even[:, 1 : n_pair + 1]
    odd = np.empty((H, We), np.float32)
    codd = np.empty((H, We), np.float32)
    cv2.addWeighted(L, 0.5, R, 0.5, 0.0, dst=odd[:, :n_pair])
    cv2.min(conf_e[:, :n_pair], conf_e[:, 1 : n_pair + 1], dst=codd[:, :n_pair])
    odd[:, n_pair:] = even[:, n_pair:]
    codd[:, n_pair:] = conf_e[:, n_pair:]
    jump = cv2.absdiff(L, R)
    lim = cv2.max(L, R)
    lim *= np.float32(jump_rel)
    edge = np.flatnonzero(cv2.compare(jump, lim, cv2.CMP_GT).view(bool))
    if edge.size:
        ys, js = np.divmod(edge, n_pair)
        lv, rv = L[ys, js], R[ys, js]
        if image is not None:
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.int16) if image.ndim == 3 else image
            go, gl, gr = gray[ys, 2 * js + 1], gray[ys, 2 * js], gray[ys, 2 * js + 2]
            right = np.abs(go - gr) < np.abs(go - gl)
        else:
            right = np.zeros(edge.size, bool)
        val = np.where(right, rv, lv)
        odd[ys, js] = val
        codd[ys, js] = conf_of(val, jump[ys, js])
    # Interleave: a 2-channel (even, odd) image is the full-width row layout.
    inv = cv2.merge([even, odd]).reshape(H, 2 * We)[:, :W]
    conf = cv2.merge([conf_e, codd]).reshape(H, 2 * We)[:, :W]
    return np.ascontiguousarray(inv), np.ascontiguousarray(conf)


def _without_see_through(
    raw: np.ndarray, dropped: np.ndarray, fused: np.ndarray, inv: np.ndarray, stride: int, W: int, rel: float
) -> np.ndarray:
    """``raw`` (flat returns) without the parallax see-through returns found by the column pass
    (``dropped``, flat on its column grid) and their row neighbours (+-1 px, odd columns) that are
    also farther than the estimate there by more than ``rel``."""
    Wg = W if stride == 1 else (W + 1) // 2
    dy, dx = np.divmod(dropped, Wg)
    mask = np.zeros(fused.shape, np.uint8)
    mask[dy, dx * stride] = 1
    mask = cv2.dilate(mask, np.ones((1, 3), np.uint8)).view(bool)
    fv, rv = fused.ravel().take(raw), inv.ravel().take(raw)
    drop = mask.ravel().take(raw) & (rv < fv * np.float32(1 - rel))
    return raw[~drop]


def _envelope(top: np.ndarray, half_window: int) -> np.ndarray:
    """The LiDAR's local top envelope: the highest first-return row within +-half_window columns."""
    kernel = np.ones((1, 2 * half_window + 1), np.uint8)
    return cv2.erode(top.astype(np.float32)[None, :], kernel, borderType=cv2.BORDER_REPLICATE)[0]


def _raw_top(valid: np.ndarray) -> np.ndarray:
    """Row of each column's highest return (float32); empty columns: the lower of the nearest tops."""
    H, W = valid.shape
    has = valid.any(axis=0)
    top = np.where(has, np.argmax(valid, axis=0), H)
    if has.any() and not has.all():
        cols = np.arange(W)
        left = np.maximum.accumulate(np.where(has, cols, -1))
        right = np.minimum.accumulate(np.where(has, cols, W)[::-1])[::-1]
        t_l = np.where(left >= 0, top[np.maximum(left, 0)], H)
        t_r = np.where(right < W, top[np.minimum(right, W - 1)], H)
        top = np.where(has, top, np.maximum(t_l, t_r))
    return top.astype(np.float32)


def _clip_above(inv: np.ndarray, first_row: np.ndarray) -> None:
    """NaN above ``first_row`` (per column), in place."""
    inv[np.arange(inv.shape[0], dtype=np.float32)[:, None] < first_row[None, :]] = np.nan


def _row_neighbours(
    inv: np.ndarray, usable: np.ndarray, query: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For flat pixel indices ``query``: nearest ``usable`` pixel left and right in the same row within
    ``max_gap`` px. Returns (has_left, has_right, left_index, right_index, left_value, right_value)."""
    H, W = inv.shape
    fidx = np.flatnonzero(usable)
    if fidx.size == 0:
        no = np.zeros(query.size, bool)
        return (
            no,
            no,
            query,
            query,
            np.full(query.size, np.nan, np.float32),
            np.full(query.size, np.nan, np.float32),
        )
    # Row-major list of usable pixels: the first one at or right of (y, x) is at row_start[y] + (count
    # of usable pixels left of x in row y), both read from an integral image.
    integ = cv2.integral(usable.view(np.uint8)).ravel()
    W1 = W + 1
    qy, qx = np.divmod(query, W)
    k = integ.take(qy * W1 + W).astype(np.int64) + (integ.take((qy + 1) * W1 + qx) - integ.take(qy * W1 + qx))
    kr, kl = np.minimum(k, fidx.size - 1), np.maximum(k - 1, 0)
    r_pos, l_pos = fidx.take(kr), fidx.take(kl)
    has_r = (k < fidx.size) & (r_pos // W == qy) & (r_pos - query <= max_gap) & (r_pos != query)
    has_l = (k > 0) & (l_pos // W == qy) & (query - l_pos <= max_gap)
    flat = inv.ravel()
    vr = np.where(has_r, flat.take(r_pos), np.nan).astype(np.float32)
    vl = np.where(has_l, flat.take(l_pos), np.nan).astype(np.float32)
    return has_l, has_r, l_pos, r_pos, vl, vr


def _row_second_opinions(
    inv: np.ndarray,
    conf: np.ndarray,
    split: np.ndarray,
    env: np.ndarray | None,
    top: np.ndarray,
    image: np.ndarray | None,
    split_gap: int,
    hole_gap: int,
    jump_rel: float,
    conf_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> None:
    """Row-direction second opinions from the nearest reliable estimates (not filled across a
    discontinuity) left and right in the same row, in place:

    - **split pixels** (filled across a discontinuity): when the two neighbours (within ``split_gap``)
      agree with each other but not with the column's choice, the pixel is enclosed by that surface
      (a dark window above a dark car roof: same colour, so the image edge misled the column split)
      and takes the row interpolation;
    - **holes** (NaN) below the LiDAR envelope ``env``: the row interpolation when the neighbours
      (within ``hole_gap``) agree, else the side of closer image intensity (the farther side without an
      image), else the only side. Pixels with neither stay NaN.
    """
    H, W = inv.shape
    finite = np.isfinite(inv)
    queries = []
    if split_gap > 0:
        queries.append(np.flatnonzero(split & finite))
    n_split = queries[0].size if queries else 0
    if env is not None and hole_gap > 0:
        holes = ~finite
        holes &= np.arange(H, dtype=np.float32)[:, None] >= env[None, :]
        queries.append(np.flatnonzero(holes))
    if not queries:
        return
    q = np.concatenate(queries) if len(queries) > 1 else queries[0]
    if q.size == 0:
        return
    is_hole = np.arange(q.size) >= n_split
    has_l, has_r, l_pos, r_pos, vl, vr = _row_neighbours(inv, finite & ~split, q, max(split_gap, hole_gap))
    gap = np.where(is_hole, hole_gap, split_gap)
    has_l &= q - l_pos <= gap
    has_r &= r_pos - q <= gap
    both = has_l & has_r
    tol = np.float32(jump_rel) * np.fmax(vl, vr)
    agree = both & (np.abs(vr - vl) <= tol)
    t = ((q - l_pos) / np.maximum(r_pos - l_pos, 1)).astype(np.float32)
    row_val = vl + t * (vr - vl)
    cur = inv.ravel().take(q)
    # Split pixels: only an agreeing row that contradicts the column.
    val = np.where(~is_hole & agree & (np.abs(cur - row_val) > tol), row_val, np.float32(np.nan))
    jump = np.abs(cur - row_val) * np.float32(0.5)
    h = np.flatnonzero(is_hole)  # (without row neighbours only the carry-up below can fill)
    if h.size:
        hq = q[h]
        if image is not None:
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
            gray = gray.ravel().astype(np.int16)
            g = gray.take(hq)
            right = np.abs(g - gray.take(r_pos[h])) < np.abs(g - gray.take(l_pos[h]))
        else:
            right = vr[h] < vl[h]  # the farther surface
        pick = np.where(both[h], np.where(right, vr[h], vl[h]), np.where(has_r[h], vr[h], vl[h]))
        # Above the column's own top return (its neighbours' top is higher): unless the row agrees,
        # the column's top value carried up (the same surface continuing over a row or two) beats a
        # far row neighbour on another surface.
        hy, hx = np.divmod(hq, W)
        ctop = top[hx]
        up = (hy < ctop) & (hy >= ctop - TOP_CARRY_PX) & (ctop < H)
        # ... continuing the column's slope just below its top (exact on a plane such as the road).
        t0 = np.minimum(ctop, H - 1) * W + hx
        carry = inv.ravel().take(t0)
        below = inv.ravel().take(np.minimum(t0 + W, H * W - 1))
        slope = np.where(np.isfinite(below) & (ctop < H - 1), below - carry, np.float32(0.0))
        carry = carry - slope * (ctop - hy).astype(np.float32)
        carry[~(carry > 0)] = np.nan
        use_carry = up & np.isfinite(carry)
        pick = np.where(use_carry, carry, pick)
        # An agreeing row wins unless the column's own surface is nearer: the top ring returned from
        # a far surface left and right but not here (a dropout on a dark near object that occludes it).
        nearer = use_carry & (carry > row_val[h] + tol[h])
        val[h] = np.where(agree[h] & ~nearer, row_val[h], pick)
        jump[h] = np.where(both[h], np.abs(vr[h] - vl[h]), np.float32(0.5) * val[h])
    ok = np.flatnonzero(np.isfinite(val))
    inv.ravel()[q[ok]] = val[ok]
    conf.ravel()[q[ok]] = conf_of(val[ok], jump[ok])


def _fill_empty_columns(inv: np.ndarray, jump: np.ndarray, top: np.ndarray, max_cols: int) -> None:
    """Interpolate runs of columns without returns from their nearest columns with returns, in place."""
    H, W = inv.shape
    has = top < H
    if has.all() or not has.any() or max_cols <= 0:
        return
    cols = np.arange(W)
    left = np.maximum.accumulate(np.where(has, cols, -1))
    right = np.minimum.accumulate(np.where(has, cols, W)[::-1])[::-1]
    fill = ~has & (left >= 0) & (right < W) & (right - left <= max_cols + 1)
    c = np.flatnonzero(fill)
    if c.size == 0:
        return
    L, R = left[c], right[c]
    t = ((c - L) / (R - L)).astype(np.float32)
    inv[:, c] = inv[:, L] * (1 - t) + inv[:, R] * t  # NaN where either side has none
    jump[:, c] = np.maximum(jump[:, L], jump[:, R]) + np.abs(inv[:, L] - inv[:, R])
    top[c] = np.maximum(top[L], top[R])


def _extend_up(inv: np.ndarray, jump: np.ndarray) -> None:
    """Carry each column's highest finite value up to row 0, in place (``extrapolate_top``).

    The extrapolated pixels get a jump equal to the value itself, i.e. a confidence near zero."""
    finite = np.isfinite(inv)
    has = finite.any(axis=0)
    top = np.argmax(finite, axis=0)
    cols = np.flatnonzero(has)
    above = np.arange(inv.shape[0])[:, None] < top[None, cols]
    vals = inv[top[cols], cols]
    inv[:, cols] = np.where(above, vals[None, :], inv[:, cols])
    jump[:, cols] = np.where(above, vals[None, :], jump[:, cols])


@register(
    "guided", "image-guided scanline completion in inverse depth (default); confidence from an error model"
)
def _guided(**params) -> GuidedCompleter:
    return GuidedCompleter(use_image=True, **params)


@register("lidar_only", "the guided completer without the image (camera lost): midpoint splits")
def _lidar_only(**params) -> GuidedCompleter:
    return GuidedCompleter(use_image=False, **params)
