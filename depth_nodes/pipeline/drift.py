"""Online camera-LiDAR calibration-drift alarm: do LiDAR depth edges still fall on image edges?

On every ``period_frames``-th frame (ROS-free; ~5 ms of CPU a check at 1216 x 352 on the loaded 2-core dev
machine, ``docs/node_bench.md``):

1. *Depth-edge returns*: consecutive returns of one image row (<= ``row_gap_px`` apart) whose depths jump
   by more than ``max(jump_m, jump_rel * nearer)``: the nearer one sits on an object's silhouette, where the
   image has a vertical edge (scored on |d/du| of the image). The same down each column (<= ``col_gap_px``,
   the ring spacing): the point half-way between the two returns sits on a horizontal edge (|d/dv|).
2. *Alignment score map*: the mean normalised image gradient (Sobel of the blurred grey image, 3 x 3
   max-filtered, divided by its frame mean) at the edge returns shifted by every offset (du, dv) of a grid
   (+-``max_shift_px`` = 16 px, step ``step_px`` = 2 px), separately for the left, centre and right third of the image
   (a roll about the optical axis shifts the thirds in opposite directions).
3. Over a window of ``window_frames`` frames the maps are summed. In each third the best offset's gain
   over (0, 0) (score ratio - 1) counts as evidence when that offset lies >= ``warn_shift_px`` from
   (0, 0); the evidence of the three thirds is summed (a drift moves every third; a real rig's local
   misfit, e.g. motion during the sweep on one side, moves one). Evidence >= ``min_evidence``: WARN;
   and an offset >= ``error_shift_px``: ERROR. A correct calibration peaks near (0, 0); a 1 deg
   rotation moves the image of a far point by ~f * 0.017 = 12.6 px at KITTI's focal length (721 px), a
   1 deg roll ~7 px at the centres of the outer thirds. Thresholds measured on the real KITTI drive
   (``docs/robustness.md``): zero drift gave at most 0.18 evidence, a 1 deg drift at least 0.35.
Also reported: the alignment score at (0, 0) against its running baseline (first ``baseline_windows``
windows), the offset found, and the number of edge returns.

Why hand-written: no library scores LiDAR / image edge alignment online; the steps are a few OpenCV
filters and one gather per offset (vectorised, no per-return loop).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

OK, WARN, ERROR = 0, 1, 2


@dataclass
class DriftConfig:
    window_frames: int = 10  # checked frames summed per assessment
    #: Check every n-th frame offered (node parameter ``drift_check_period_frames``): drift is slow (a loose
    #: mount, a knock), so a window of 10 checks over 5 s at 10 Hz loses nothing and costs a fifth.
    period_frames: int = 5
    max_shift_px: int = 16
    step_px: int = 2
    warn_shift_px: float = 4.0
    error_shift_px: float = 8.0
    min_evidence: float = 0.25  # summed gain of the thirds whose best offset is >= warn_shift_px
    row_gap_px: int = 4
    col_gap_px: int = 10
    jump_m: float = 1.0
    jump_rel: float = 0.15
    min_edges: int = 150  # per third and window
    baseline_windows: int = 3


@dataclass
class DriftStatus:
    level: int = OK
    message: str = ""
    values: dict[str, object] = field(default_factory=dict)


def edge_returns(
    sparse: np.ndarray, cfg: DriftConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(v_h, u_h) of returns on vertical image edges, (v_v, u_v) of points on horizontal edges (int)."""
    d = np.asarray(sparse, np.float32)
    h, w = d.shape
    # One flat scan of the image (np.nonzero on 2-D, or on the transposed view, costs ~6x more); the
    # column-major order of the same returns is a sort of their ~20k indices.
    flat = np.flatnonzero(d.ravel() > 0)
    rows, cols = np.divmod(flat, w)
    by_col = np.argsort(cols * h + rows)
    out = []
    for transpose, gap in ((False, cfg.row_gap_px), (True, cfg.col_gap_px)):
        # (r, c) in scan order: consecutive entries are neighbours along a row (transposed: a column)
        r, c = (cols[by_col], rows[by_col]) if transpose else (rows, cols)
        z = d.ravel()[flat[by_col] if transpose else flat]
        same = (r[1:] == r[:-1]) & (c[1:] - c[:-1] <= gap)
        near = np.minimum(z[1:], z[:-1])
        jump = same & (np.abs(z[1:] - z[:-1]) > np.maximum(cfg.jump_m, cfg.jump_rel * near))
        i = np.flatnonzero(jump)
        first_near = z[i] < z[i + 1]
        if transpose:  # horizontal edge: half-way between the two returns of the column
            cc = (c[i] + c[i + 1]) // 2
            out.append((cc, r[i]))  # back to (v, u)
        else:
            out.append((r[i], np.where(first_near, c[i], c[i + 1])))
    (vh, uh), (vv, uv) = out
    return vh, uh, vv, uv


def gradient_maps(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|d/du| and |d/dv| of the blurred grey image, 3 x 3 max-filtered, each divided by its mean."""
    g = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = cv2.GaussianBlur(g, (0, 0), 1.0)
    k = np.ones((3, 3), np.uint8)
    maps = []
    for dx, dy in ((1, 0), (0, 1)):
        m = cv2.dilate(np.abs(cv2.Sobel(g, cv2.CV_32F, dx, dy, ksize=3)), k)
        maps.append(np.divide(m, np.float32(max(float(m.mean()), 1e-6)), out=m))
    return maps[0], maps[1]


class DriftMonitor:
    """Feed :meth:`update` each frame with an RGB image and the sparse depth projected with the current
    extrinsics; :meth:`status` gives the level, a message and diagnostics values. Never raises on content."""

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.cfg = config or DriftConfig()
        s = np.arange(-self.cfg.max_shift_px, self.cfg.max_shift_px + 1, self.cfg.step_px)
        self.dv, self.du = (a.ravel() for a in np.meshgrid(s, s, indexing="ij"))
        self.zero = int(np.flatnonzero((self.du == 0) & (self.dv == 0))[0])
        self._frames: deque = deque(maxlen=self.cfg.window_frames)
        self._baseline: list[float] = []
        self._windows = 0
        self._status = DriftStatus(OK, "calibration check: waiting for frames", {"drift_check": "waiting"})
        self.frames_offered = 0  # frames seen by :meth:`offer`
        self.checks = 0  # frames checked (each costs one :meth:`frame_maps`)
        self.deferred = 0  # due checks put off because a newer frame was waiting
        self._since_check = 0

    def reset(self) -> None:
        self._frames.clear()

    def offer(self, rgb: np.ndarray, sparse: np.ndarray, busy: bool = False) -> bool:
        """The per-frame entry of the node: checks every ``period_frames``-th frame; True when it checked.

        ``busy`` (a newer frame is already waiting for the worker): a due check moves to the next frame, so
        the check never costs a frame at a rate the pipeline only just keeps up with; a check put off for a
        whole further period runs anyway, so an overloaded node still checks (every 2 periods at worst).
        """
        self.frames_offered += 1
        self._since_check += 1
        period = max(1, int(self.cfg.period_frames))
        if self._since_check < period:
            return False
        if busy and self._since_check < 2 * period:
            self.deferred += 1
            return False
        self._since_check = 0
        self.checks += 1
        self.update(rgb, sparse)
        return True

    def frame_maps(self, rgb: np.ndarray, sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per third: summed score at every offset (3 x n_offsets) and edge counts (3,)."""
        gu, gv = gradient_maps(rgb)
        h, w = gu.shape
        vh, uh, vv, uv = edge_returns(sparse, self.cfg)
        sums = np.zeros((3, self.du.size))
        counts = np.zeros(3)
        for v, u, g in ((vh, uh, gu), (vv, uv, gv)):
            if v.size == 0:
                continue
            third = np.minimum(u * 3 // w, 2)
            vs = np.clip(v[None, :] + self.dv[:, None], 0, h - 1)
            us = np.clip(u[None, :] + self.du[:, None], 0, w - 1)
            vals = g[vs, us]  # n_offsets x n_edges
            for t in range(3):
                sel = third == t
                sums[t] += vals[:, sel].sum(axis=1)
                counts[t] += sel.sum()
        return sums, counts

    def update(self, rgb: np.ndarray, sparse: np.ndarray) -> DriftStatus:
        try:
            if rgb is None or sparse is None or np.asarray(rgb).shape[:2] != np.asarray(sparse).shape:
                return self._status
            self._frames.append(self.frame_maps(rgb, sparse))
        except (ValueError, cv2.error):
            return self._status
        if len(self._frames) == self.cfg.window_frames:
            self._status = self._assess()
        return self._status

    def status(self) -> DriftStatus:
        """The latest assessment, with the check counters (``drift_checks`` of ``drift_frames_offered``)."""
        st = self._status
        counters = {
            "drift_check_period_frames": max(1, int(self.cfg.period_frames)),
            "drift_checks": self.checks,
            "drift_checks_deferred": self.deferred,
            "drift_frames_offered": self.frames_offered,
        }
        return DriftStatus(st.level, st.message, {**st.values, **counters})

    def _assess(self) -> DriftStatus:
        cfg = self.cfg
        sums = sum(f[0] for f in self._frames)
        counts = sum(f[1] for f in self._frames)
        worst_shift, evidence, offsets, score0 = 0.0, 0.0, [], []
        for t in range(3):
            if counts[t] < cfg.min_edges:
                offsets.append("n/a")
                continue
            s = sums[t] / counts[t]
            best = int(np.argmax(s))
            gain = s[best] / max(s[self.zero], 1e-9) - 1.0
            shift = float(np.hypot(self.du[best], self.dv[best]))
            score0.append(s[self.zero])
            offsets.append(f"{self.du[best]:+d},{self.dv[best]:+d}")
            if shift >= cfg.warn_shift_px:
                evidence += gain
                worst_shift = max(worst_shift, shift)
        self._windows += 1
        values: dict[str, object] = {
            "drift_edge_returns": int(counts.sum()),
            "drift_best_offset_px_left_centre_right": " ".join(offsets),
            "drift_shift_px": float(worst_shift),
            "drift_evidence": float(evidence),
        }
        if not score0:
            values["drift_check"] = "too few depth edges"
            return DriftStatus(OK, "", values)
        align = float(np.mean(score0))
        if len(self._baseline) < cfg.baseline_windows:
            self._baseline.append(align)
        values["drift_alignment_score"] = align
        values["drift_alignment_vs_baseline"] = align / float(np.mean(self._baseline))
        values["drift_check"] = "ok"
        if evidence < cfg.min_evidence:
            return DriftStatus(OK, "", values)
        level = ERROR if worst_shift >= cfg.error_shift_px else WARN
        values["drift_check"] = "drifted"
        msg = (
            f"camera-LiDAR extrinsics look drifted: LiDAR depth edges align {worst_shift:.0f} px off the image "
            f"edges (evidence {evidence:.2f} >= {cfg.min_evidence}; left/centre/right best offsets {' '.join(offsets)})"
        )
        return DriftStatus(level, msg, values)


def merge_status(level: int, message: str, values: dict, status: DriftStatus) -> tuple[int, str]:
    """Fold a drift status into a diagnostics (level, message); ``values`` gets the drift values."""
    values.update(status.values)
    if status.level > OK:
        return max(level, status.level), f"{message}; {status.message}" if message else status.message
    return level, message
