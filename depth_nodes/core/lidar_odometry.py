"""LiDAR odometry for motion compensation without odometry TF: KISS-ICP (``pip install kiss-icp``).

Every scan handed to :meth:`LidarOdometry.update` is registered against KISS-ICP's local map; the relative
pose between the last two registered scans, over their stamp difference, is the LiDAR's constant-velocity
twist (:func:`core.motion.velocity_from_poses`). KISS-ICP's own deskewing is off (the node deskews with the
per-point times it decoded). The import is lazy: nothing loads kiss_icp unless this mode is chosen.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from depth_nodes.core.motion import Velocity, velocity_from_poses
from depth_nodes.errors import DepthNodesError

#: A twist from scans further apart than this is stale (a gap in the stream): start over.
MAX_GAP_S = 0.5


def kiss_icp_factory(
    max_range_m: float, min_range_m: float, needed_for: str, error: type[DepthNodesError] = DepthNodesError
) -> Callable[[], object]:
    """A maker of fresh ``KissICP`` odometries: range limits as given, voxel = max range / 100, no deskewing.

    KISS-ICP's own deskewing stays off: callers either deskew with the decoded per-point times first or have
    none. ``needed_for`` names the feature in the ``error`` raised when kiss-icp is not installed.
    """
    try:
        from kiss_icp.config import load_config
        from kiss_icp.kiss_icp import KissICP
    except ModuleNotFoundError as exc:
        raise error(f"{needed_for} needs kiss-icp (pip install kiss-icp)") from exc
    config = load_config(None)
    config.data.max_range, config.data.min_range, config.data.deskew = max_range_m, min_range_m, False
    config.mapping.voxel_size = max_range_m / 100.0
    return lambda: KissICP(config)


class LidarOdometry:
    """Constant-velocity twist from the last two KISS-ICP registered scans (voxel = max range / 100)."""

    def __init__(self, max_range_m: float = 100.0, min_range_m: float = 1.0) -> None:
        self._make = kiss_icp_factory(max_range_m, min_range_m, "motion_compensation 'lidar_odometry'")
        self._icp = self._make()
        self._last: tuple[int, np.ndarray] | None = None
        self.velocity: Velocity | None = None

    def update(self, points: np.ndarray, stamp_ns: int) -> Velocity | None:
        """Register the scan at ``stamp_ns`` (once per stamp) and return the current twist (None at first)."""
        if self._last is not None and stamp_ns == self._last[0]:
            return self.velocity
        if self._last is not None and not 0 < (stamp_ns - self._last[0]) * 1e-9 <= MAX_GAP_S:
            self._icp, self._last, self.velocity = self._make(), None, None  # gap or jump back: restart
        self._icp.register_frame(np.asarray(points[:, :3], np.float64), np.zeros(0))
        pose = np.array(self._icp.last_pose, np.float64)
        if self._last is not None:
            self.velocity = velocity_from_poses(self._last[1], self._last[0], pose, stamp_ns)
        self._last = (int(stamp_ns), pose)
        return self.velocity
