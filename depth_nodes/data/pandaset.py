"""Reader of the PandaSet folder layout beside the project (``frames/NN.{jpg,npz}`` + ``calib.json``).

One sequence: front camera (pinhole, no distortion), Hesai Pandar64 (64-beam spinning, the main input) and,
in some frames, Hesai PandarGT (forward, non-spinning: a ring-less scan pattern). Points of both LiDARs
are in the Pandar64 sensor frame of their frame; ``T_cam_lidar`` and ``T_world_lidar`` are per frame
(4x4, ``T_a_b`` maps frame b to frame a). The Pandar64 carries no ring id: :meth:`PandaSetDrive.rings`
estimates it from each point's elevation against the devkit's beam table, after re-expressing the point
in the LiDAR pose interpolated at its capture time (the dataset's motion compensation otherwise blurs the
elevations while the car moves).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.data.kitti_depth import read_rgb
from depth_nodes.errors import DataFormatError

#: Pandar64 beam elevations (deg), channel 1..64 top to bottom: scaleapi/pandaset-devkit
#: ``tutorials/raw_depth_projection/pandar64_channel_distribution.csv`` (``vertical_angle`` column).
PANDAR64_ELEVATIONS_DEG = np.array(
    [14.87, 11.02, 8.047, 5.045, 3.028, 2.016, 1.848, 1.676, 1.51, 1.339, 1.172, 1.001, 0.834, 0.663,
     0.496, 0.325, 0.157, -0.012, -0.181, -0.349, -0.52, -0.687, -0.857, -1.025, -1.196, -1.363, -1.534,
     -1.7, -1.872, -2.04, -2.21, -2.377, -2.548, -2.712, -2.885, -3.052, -3.222, -3.387, -3.56, -3.724,
     -3.896, -4.062, -4.233, -4.397, -4.57, -4.732, -4.904, -5.069, -5.241, -5.403, -5.577, -5.738, -5.91,
     -6.073, -7.075, -8.071, -9.072, -9.897, -11.044, -12.018, -12.986, -13.942, -18.901, -24.909]
)  # fmt: skip


def is_pandaset_dir(path: str | Path) -> bool:
    """True for a folder in this layout (``calib.json`` + ``frames/``)."""
    p = Path(path)
    return (p / "calib.json").is_file() and (p / "frames").is_dir()


def _matrix(value, what: str) -> np.ndarray:
    T = np.asarray(value, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise DataFormatError(f"calib.json: {what} must be a finite 4x4 matrix, got shape {T.shape}")
    return T


def _interpolate_poses(stamps_ns: np.ndarray, poses: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """Poses (K x 4 x 4) at times ``t_ns``: linear translation, SLERP rotation (scipy), clamped at the ends."""
    from scipy.spatial.transform import Rotation, Slerp

    t = np.clip(t_ns.astype(np.float64), stamps_ns[0], stamps_ns[-1])
    rel = (t - stamps_ns[0]) * 1e-9
    key = (stamps_ns - stamps_ns[0]) * 1e-9
    out = np.empty((t.size, 4, 4))
    out[:, :3, :3] = Slerp(key, Rotation.from_matrix(poses[:, :3, :3]))(rel).as_matrix()
    for a in range(3):
        out[:, a, 3] = np.interp(rel, key, poses[:, a, 3])
    out[:, 3] = (0, 0, 0, 1)
    return out


class PandaSetDrive:
    """One PandaSet sequence in the shared folder layout; data files are read lazily per frame."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not is_pandaset_dir(self.path):
            raise DataFormatError(f"{self.path}: not a PandaSet folder (needs calib.json and frames/)")
        try:
            calib = json.loads((self.path / "calib.json").read_text())
            cam = calib["camera"]
            self._camera = CameraModel(int(cam["width"]), int(cam["height"]), np.asarray(cam["K"]))
            frames = calib["frames"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFormatError(f"{self.path / 'calib.json'}: missing or bad field ({exc})") from exc
        if not frames:
            raise DataFormatError(f"{self.path / 'calib.json'}: no frames")
        self._frames = frames
        self.T_cam_lidar = np.stack([_matrix(f["T_cam_lidar"], "T_cam_lidar") for f in frames])
        self.T_world_lidar = np.stack([_matrix(f["T_world_lidar"], "T_world_lidar") for f in frames])
        self.lidar_stamps_ns = np.array([int(f["lidar_stamp_ns"]) for f in frames], np.int64)
        self.camera_stamps_ns = np.array([int(f["camera_stamp_ns"]) for f in frames], np.int64)

    @property
    def n_frames(self) -> int:
        return len(self._frames)

    def name(self, i: int) -> str:
        return f"{int(self._frames[i]['frame']):02d}"

    def camera(self) -> CameraModel:
        return self._camera

    def image(self, i: int) -> np.ndarray:
        """Front camera image ``i`` as H x W x 3 uint8 RGB."""
        return read_rgb(self.path / self._frames[i]["image"])

    def _npz(self, i: int):
        path = self.path / self._frames[i]["lidar"]
        if not path.is_file():
            raise DataFormatError(f"LiDAR file not found: {path}")
        return np.load(path, allow_pickle=False)

    def scan(self, i: int) -> np.ndarray:
        """Pandar64 points of frame ``i``: N x 4 float32 (x, y, z m, intensity), Pandar64 frame."""
        with self._npz(i) as d:
            pts = d["points"]
        if pts.ndim != 2 or pts.shape[1] != 4:
            raise DataFormatError(f"frame {i}: points must be N x 4, got {pts.shape}")
        return pts

    def scan_times_ns(self, i: int) -> np.ndarray:
        with self._npz(i) as d:
            return d["t_ns"]

    def scan_gt(self, i: int) -> np.ndarray | None:
        """PandarGT points of frame ``i`` (M x 4, Pandar64 frame) or None where the frame has none."""
        with self._npz(i) as d:
            return d["points_gt"] if "points_gt" in d.files else None

    def rings(self, i: int, max_residual_deg: float = 0.08) -> np.ndarray:
        """Estimated Pandar64 ring (0 = top beam) per point of frame ``i``; -1 where no beam is within
        ``max_residual_deg`` of the point's elevation (re-expressed at its capture time)."""
        pts = self.scan(i)[:, :3].astype(np.float64)
        t_ns = self.scan_times_ns(i)
        T_at = _interpolate_poses(self.lidar_stamps_ns, self.T_world_lidar, t_ns)
        world = transform_points(self.T_world_lidar[i], pts)
        # p' = inv(T_world_lidar(t)) @ X_world, per point.
        d = world - T_at[:, :3, 3]
        local = np.einsum("nji,nj->ni", T_at[:, :3, :3], d)
        elev = np.degrees(np.arctan2(local[:, 2], np.hypot(local[:, 0], local[:, 1])))
        table = PANDAR64_ELEVATIONS_DEG
        order = np.argsort(table)
        pos = np.clip(np.searchsorted(table[order], elev), 1, table.size - 1)
        lo, hi = order[pos - 1], order[pos]
        best = np.where(np.abs(elev - table[lo]) <= np.abs(elev - table[hi]), lo, hi)
        out = best.astype(np.int16)
        out[np.abs(elev - table[best]) > max_residual_deg] = -1
        return out

    def T_lidar_lidar(self, target: int, source: int) -> np.ndarray:
        """Maps points of frame ``source``'s LiDAR frame into frame ``target``'s (dataset poses)."""
        return invert(self.T_world_lidar[target]) @ self.T_world_lidar[source]
