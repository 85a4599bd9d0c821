"""The ``lidar_memory`` mode's estimator: the remembered scans carried to the image, mono filling the rest.

ROS-free; the node's worker feeds it (:meth:`MemoryFallback.remember` for every paired scan, with its odometry
pose when there is one) and, for a frame without a fresh scan, asks it first whether the memory can serve
this image (:meth:`MemoryFallback.prepare`, with the camera's odometry pose at the image time, or None).

Odometry. With a pose for every scan and for the camera at the image time (TF ``fixed_frame``), the memory
is carried with it. **Without odometry** the memory is used only while the robot is known to be still:
the scans are remembered in the LiDAR frame and the camera image is compared with the one taken with the
newest remembered scan (grey 64 px-wide thumbnails, mean absolute difference <= ``still_image_diff``
grey levels); once the picture changes, the robot (or the scene) moved and the memory is not used (the
usual stale-LiDAR path, monocular), and :attr:`MemoryFallback.reason` says why.

The monocular estimator, when one is installed and loaded, fills what the memory does not cover, its scale
fitted to the carried memory returns of the same frame (:mod:`depth_nodes.pipeline.memory_estimate`); that
fit is handed to the estimator's scale tracker, which ``monocular`` mode carries once the memory ages out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import cv2
import numpy as np

from depth_nodes import completion
from depth_nodes.completion.base import Completion
from depth_nodes.completion.conditioning import DEFAULT_OCCLUSION
from depth_nodes.core.transforms import invert
from depth_nodes.errors import EmptyInputError
from depth_nodes.pipeline.lidar_memory import LidarMemory, MemoryParams
from depth_nodes.pipeline.memory_estimate import estimate_from_memory
from depth_nodes.pipeline.modes import LIDAR_MEMORY

ODOMETRY, STILL = "odometry", "still"
THUMB_WIDTH_PX = 64


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Grey ``THUMB_WIDTH_PX``-wide thumbnail (area averaging) for the stillness test."""
    h, w = rgb.shape[:2]
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    size = (THUMB_WIDTH_PX, max(1, round(h * THUMB_WIDTH_PX / w)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class _View:
    """What :meth:`MemoryFallback.prepare` found for one frame (worker thread only)."""

    stamp_ns: int
    T_fixed_cam: np.ndarray
    T_cam_lidar: np.ndarray | None


class MemoryFallback:
    """Estimator of mode ``lidar_memory`` (``needs_lidar`` False: it never sees a fresh scan)."""

    name = LIDAR_MEMORY
    needs_image = True
    needs_lidar = False

    def __init__(
        self,
        params: MemoryParams | None = None,
        completer: str = completion.DEFAULT_COMPLETER,
        mono=None,
        still_image_diff: float = 4.0,
    ) -> None:
        self.memory = LidarMemory(params)
        self.completer = completion.create(completer)
        self.mono = mono  # a pipeline mono estimator (GuardedMono) or None
        self.still_image_diff = float(still_image_diff)
        self.kind = ""  # ODOMETRY | STILL: how the remembered scans are posed
        self.reason = "no scan remembered yet"
        self._lock = threading.Lock()
        self._view: _View | None = None
        self._still_thumb: np.ndarray | None = None
        self._T_cam_lidar_still: np.ndarray | None = None
        self.last: dict[str, float] = {}
        self.frames_served = 0  # frames whose depth came from the memory (cumulative)

    # ------------------------------------------------------------------ feeding (worker thread)
    def remember(
        self,
        points: np.ndarray,
        stamp_ns: int,
        T_fixed_lidar: np.ndarray | None,
        T_cam_lidar: np.ndarray,
        rgb: np.ndarray | None = None,
    ) -> None:
        """A fresh scan (already deskewed), with its odometry pose (None: no odometry, still-only memory)
        and the static ``camera <- lidar``; ``rgb``: the image it was paired with (stillness reference)."""
        kind = ODOMETRY if T_fixed_lidar is not None else STILL
        with self._lock:
            if kind != self.kind:  # poses of another kind cannot be mixed
                self.memory.clear()
                self.kind = kind
            if kind == STILL:
                T_fixed_lidar = np.eye(4)
                self.memory.clear()  # no odometry: only the newest scan is valid in the LiDAR frame
                self._T_cam_lidar_still = np.asarray(T_cam_lidar, np.float64)
                self._still_thumb = thumbnail(rgb) if rgb is not None else None
        self.memory.add(points, stamp_ns, T_fixed_lidar)

    def prepare(
        self,
        stamp_ns: int,
        T_fixed_cam: np.ndarray | None,
        rgb: np.ndarray | None,
        why_no_odometry: str = "",
        T_cam_lidar: np.ndarray | None = None,
    ) -> tuple[bool, str]:
        """Can the memory serve the image at ``stamp_ns``? ``T_fixed_cam``: the camera's odometry pose then
        (None: no odometry TF, ``why_no_odometry`` says why); ``T_cam_lidar`` (static) places the LiDAR for
        the travelled distance. Returns ``(usable, reason)``."""
        self._view = None
        newest = self.memory.newest_stamp_ns()
        p = self.memory.params
        if newest is None:
            return self._no("no LiDAR scan remembered")
        age_s = (stamp_ns - newest) * 1e-9
        if age_s > p.max_age_s:
            return self._no(f"LiDAR memory aged out: newest remembered scan {age_s:.2f} s old > "
                            f"memory_max_age_s={p.max_age_s:g}")  # fmt: skip
        if age_s < 0:
            return self._no("LiDAR memory: the image is older than the newest remembered scan")
        if self.kind == ODOMETRY:
            if T_fixed_cam is None:
                return self._no(f"LiDAR memory needs odometry at the image time: {why_no_odometry}")
            self._view = _View(stamp_ns, np.asarray(T_fixed_cam, np.float64), T_cam_lidar)
            return self._yes(f"LiDAR memory carried with odometry ({age_s:.2f} s old)")
        if self._still_thumb is None or rgb is None:
            return self._no(f"no odometry TF ({why_no_odometry}) and no image to tell the robot is still")
        diff = float(np.mean(np.abs(thumbnail(rgb) - self._still_thumb)))
        if self._still_thumb.shape != thumbnail(rgb).shape or diff > self.still_image_diff:
            return self._no(f"no odometry TF ({why_no_odometry}): memory only while the robot is still, but the "
                            f"image changed by {diff:.1f} grey levels since the last scan")  # fmt: skip
        T = self._T_cam_lidar_still
        self._view = _View(stamp_ns, invert(T), T)
        return self._yes(f"LiDAR memory, robot still (no odometry TF; image unchanged, {age_s:.2f} s old)")

    def _no(self, why: str) -> tuple[bool, str]:
        self.reason = why
        return False, why

    def _yes(self, why: str) -> tuple[bool, str]:
        self.reason = why
        return True, why

    # ------------------------------------------------------------------ Estimator
    def estimate(self, inputs) -> Completion:
        view = self._view
        if view is None or view.stamp_ns != inputs.stamp_ns:
            raise EmptyInputError(f"LiDAR memory not usable: {self.reason}")
        carried = self.memory.carry(view.T_fixed_cam, view.stamp_ns, view.T_cam_lidar)
        if carried.empty:
            raise EmptyInputError("LiDAR memory: no remembered scan within memory_max_age_s")
        pred, kind = self._mono_prediction(inputs)
        max_depth = inputs.max_depth_m or 120.0
        est = estimate_from_memory(
            carried, inputs.camera, self.completer, inputs.rgb, occlusion=DEFAULT_OCCLUSION,
            max_depth_m=max_depth, mono_pred=pred, mono_kind=kind,
        )  # fmt: skip
        self.last = {
            "age_s": carried.newest_age_s, "travelled_m": carried.travelled_m, "share_memory": est.share_memory,
            "share_mono": est.share_mono, "returns": est.n_returns, "dropped_free": carried.n_dropped_free,
        }  # fmt: skip
        self.mono_note = est.mono_note
        if est.mono_fit is not None and hasattr(self.mono, "note_fit"):  # monocular carries the newest fit
            self.mono.note_fit(replace(est.mono_fit, stamp_ns=inputs.stamp_ns))
        self.frames_served += 1
        return est.completion

    def _mono_prediction(self, inputs) -> tuple[np.ndarray | None, str]:
        """The mono net's raw prediction of this image when one is loaded (None otherwise)."""
        inner = getattr(self.mono, "inner", None)
        if inner is None or inputs.rgb is None:
            self.mono_state = getattr(self.mono, "reason", "") or "no monocular estimator"
            return None, "metric"
        self.mono_state = "ready"
        return inner.predict(inputs), inner.tracker.kind

    def diagnostics(self) -> tuple[dict[str, str], list[str]]:
        m = self.memory
        values = {
            "memory_odometry": {ODOMETRY: "odometry TF", STILL: "none (memory only while still)"}.get(
                self.kind, "no scan yet"
            ),
            "memory_scans": str(len(m)),
            "memory_points": str(m.n_points),
            "memory_state": self.reason,
            "memory_frames": str(self.frames_served),
        }
        if self.last:
            values.update({
                "memory_age_s": f"{self.last['age_s']:.2f}", "memory_travelled_m": f"{self.last['travelled_m']:.2f}",
                "memory_share_px": f"{self.last['share_memory']:.3f}", "memory_mono_share_px": f"{self.last['share_mono']:.3f}",
                "memory_returns_in_view": str(self.last["returns"]), "memory_dropped_free_space": str(self.last["dropped_free"]),
            })  # fmt: skip
        note = getattr(self, "mono_note", "") or getattr(self, "mono_state", "")
        if note:
            values["memory_mono"] = note
        return values, []
