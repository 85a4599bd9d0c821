"""``depth-nodes kitti2bag``: a KITTI raw drive -> rosbag2 (mcap or sqlite3), with the kitti2bag topic names.

Topics (frames as in the common ``kitti2bag`` tool):

=========================================  ============================  =====================
``/kitti/camera_color_left/image_raw``     ``sensor_msgs/Image`` rgb8    ``camera_color_left``
``/kitti/camera_color_left/camera_info``   ``sensor_msgs/CameraInfo``    ``camera_color_left``
``/kitti/velo/pointcloud``                 ``sensor_msgs/PointCloud2``   ``velo_link``
                                           (x, y, z, intensity float32;
                                           + ``time`` float32 s, see below)
``/tf_static``                             velo_link -> camera_color_left (+ imu_link -> velo_link)
``/tf``                                    world -> imu_link from OXTS (when ``oxts/`` exists)
=========================================  ============================  =====================

Odometry and sweep timing. ``/tf`` carries the OXTS poses relative to the first (the devkit's Mercator
conversion) at their own stamps, ``world -> imu_link`` (``calib_imu_to_velo.txt`` is needed for the chain to
``velo_link``): a node compensating motion uses ``world`` as its fixed frame. When the drive has the
per-point time sidecar ``velodyne_points/time_ns/*.npy`` (int64 ns relative to the scan stamp, as
``depth-nodes synth --motion`` writes), the cloud gets a ``time`` field: float32 seconds relative to the
header stamp, negative for points fired before it (the ``velodyne_pointcloud`` convention). Real KITTI
drives have no per-point times.

Layouts: ``*_sync`` drives (rectified images, ``.bin`` scans, same frame count everywhere) and
``*_extract`` drives (unrectified images with distortion, ``.txt`` scans, each sensor with its own count
and timestamps). Calib files are looked up in the drive directory, then in its parent (KITTI's
``2011_09_26/calib_*.txt`` next to ``2011_09_26_drive_0001_sync/``). Stamps come from each sensor's
``timestamps.txt`` at full nanosecond precision; KITTI writes local time without a zone, which is read as UTC.

Camera geometry. Sync: the image is rectified, so CameraInfo is K = P_rect_02[:, :3], D = 0, R = I,
P = [K | 0], and ``/tf_static`` carries the full velo -> camera 2 transform
``T_cam2_velo = T_cam2_rect0 * R_rect_00 * T_cam0_velo`` (``T_cam2_rect0`` is the stereo baseline from
P_rect_02). The projection ``P_rect_02 R_rect_00 T_cam0_velo X`` of the KITTI devkit is reproduced exactly.
Extract: the image is raw, so CameraInfo is K_02 / D_02 (plumb_bob) with R = R_rect_02 and
P = [P_rect_02[:, :3] | 0]; as image_geometry expects, TF goes to the rectified camera 2 frame,
``T_cam2_velo = R_rect_02 [R_02 | T_02] T_cam0_velo``, so ``K, D (R^T X)`` gives the raw pixels.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depth_nodes.core.transforms import invert
from depth_nodes.data import rosbag_io as rb
from depth_nodes.data.kitti_calib import (
    CAM_TO_CAM,
    VELO_TO_CAM,
    find_calib_files,
    read_cam_to_cam,
    read_velo_to_cam,
)
from depth_nodes.data.kitti_raw import RawDrive
from depth_nodes.errors import CalibrationError, DataFormatError

IMAGE_TOPIC = "/kitti/camera_color_left/image_raw"
INFO_TOPIC = "/kitti/camera_color_left/camera_info"
POINTS_TOPIC = "/kitti/velo/pointcloud"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
CAMERA_FRAME = "camera_color_left"
VELO_FRAME = "velo_link"
IMU_FRAME = "imu_link"
WORLD_FRAME = "world"

#: Earth radius (m) used by the KITTI devkit's OXTS -> pose conversion (Mercator projection).
EARTH_RADIUS_M = 6378137.0


# ---------------------------------------------------------------------------------------------- parsing
# Reading the raw layout (file lists, timestamps, scans, calib files) is data.kitti_raw / data.kitti_calib;
# this module only adds what a bag needs on top: OXTS poses and the camera/TF geometry per layout.
def oxts_poses(records: np.ndarray) -> np.ndarray:
    """K x 4 x 4 poses ``T_world_imu`` from OXTS records (K x >= 6), relative to the first (KITTI devkit).

    Mercator projection of (lat, lon) scaled by cos(lat0), altitude as z, R = Rz(yaw) Ry(pitch) Rx(roll),
    as ``pose_from_oxts_packet`` of the KITTI raw devkit / pykitti.
    """
    lat, lon, alt, roll, pitch, yaw = np.asarray(records, np.float64)[:, :6].T
    n = len(lat)
    scale = np.cos(np.deg2rad(lat[0]))
    tx = scale * EARTH_RADIUS_M * np.deg2rad(lon)
    ty = scale * EARTH_RADIUS_M * np.log(np.tan(np.deg2rad(90.0 + lat) / 2.0))
    cr, sr, cp, sp, cy, sy = (
        np.cos(roll),
        np.sin(roll),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(yaw),
        np.sin(yaw),
    )
    R = np.empty((n, 3, 3))
    # R = Rz(yaw) Ry(pitch) Rx(roll), vectorised over packets.
    R[:, 0] = np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], 1)
    R[:, 1] = np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], 1)
    R[:, 2] = np.stack([-sp, cp * sr, cp * cr], 1)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = R
    T[:, :3, 3] = np.stack([tx, ty, alt], 1)
    return np.linalg.inv(T[0]) @ T


# ---------------------------------------------------------------------------------------------- drive
@dataclass
class SensorStream:
    """Files of one sensor with one stamp each."""

    files: list[Path]
    stamps_ns: np.ndarray

    def head(self, limit: int | None) -> SensorStream:
        return self if limit is None else SensorStream(self.files[:limit], self.stamps_ns[:limit])


@dataclass
class KittiDrive:
    """What a bag needs from a drive: camera geometry for CameraInfo + TF, and the per-sensor streams."""

    raw: RawDrive
    rectified: bool
    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray | None
    T_cam_velo: np.ndarray
    T_velo_imu: np.ndarray | None
    images: SensorStream
    scans: SensorStream
    oxts: SensorStream | None


def _orthonormal(T: np.ndarray) -> np.ndarray:
    """KITTI prints rotations to 7 digits: project onto SO(3) (SVD) so the TF quaternion is exact."""
    u, _, vt = np.linalg.svd(T[:3, :3])
    out = T.copy()
    out[:3, :3] = u @ vt
    return out


def _imu_to_velo(raw: RawDrive) -> np.ndarray | None:
    """``T_velo_imu`` from ``calib_imu_to_velo.txt`` (drive or date dir), None when absent."""
    for folder in (raw.path, raw.path.parent):
        path = folder / "calib_imu_to_velo.txt"
        if path.is_file():
            R, T = read_velo_to_cam(path)  # same R/T format as calib_velo_to_cam.txt
            return _orthonormal(rigid_from(R, T))
    return None


def rigid_from(R: np.ndarray, T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = R, T
    return out


def load_drive(drive_dir: str | Path, layout: str = "auto", frames: int | None = None) -> KittiDrive:
    """Validate a KITTI raw drive (:class:`kitti_raw.RawDrive`) and derive the bag's camera geometry."""
    drive = Path(drive_dir)
    for name in (CAM_TO_CAM, VELO_TO_CAM):  # name the missing file itself (find_calib_files names the pair)
        if drive.is_dir() and not any((d / name).is_file() for d in (drive, drive.parent)):
            raise CalibrationError(f"calibration file {name} not found in {drive} or {drive.parent}")
    raw = RawDrive(drive)
    if layout == "auto":
        layout = "sync" if raw.synced else "extract"
    if layout not in ("sync", "extract"):
        raise DataFormatError(f"unknown layout {layout!r} (auto, sync, extract)")
    if layout == "sync":
        camera = raw.camera()
        width, height, K, D, R, P = camera.width, camera.height, camera.K, np.zeros(5), np.eye(3), None
        T_cam_velo = raw.T_cam_velo
    else:
        c2c_path, v2c_path = find_calib_files(raw.path)
        c2c = read_cam_to_cam(c2c_path, cams=(2,))
        for key in ("S_02", "K_02", "D_02", "R_02", "T_02", "R_rect_02"):
            if key not in c2c:
                raise CalibrationError(f"{c2c_path}: missing key {key!r} (needed for unrectified images)")
        width, height = (int(round(v)) for v in c2c["S_02"])
        K, D, R = c2c["K_02"], c2c["D_02"], c2c["R_rect_02"]
        # image_geometry's convention: the TF frame is the camera's *rectified* frame (raw pixels come from
        # K, D applied to R^T X), and P carries no baseline because TF already holds the camera's position.
        P = np.hstack([c2c["P_rect_02"][:, :3], np.zeros((3, 1))])
        T_raw_velo = rigid_from(c2c["R_02"], c2c["T_02"]) @ rigid_from(*read_velo_to_cam(v2c_path))
        T_cam_velo = rigid_from(c2c["R_rect_02"], np.zeros(3)) @ T_raw_velo
    oxts = None
    T_velo_imu = _imu_to_velo(raw)
    if raw.has_oxts and T_velo_imu is not None:
        oxts = SensorStream(raw.oxts_files, raw.oxts_stamps_ns).head(frames)
    return KittiDrive(
        raw=raw,
        rectified=layout == "sync",
        width=width,
        height=height,
        K=np.asarray(K, np.float64),
        D=np.asarray(D, np.float64),
        R=np.asarray(R, np.float64),
        P=P,
        T_cam_velo=_orthonormal(T_cam_velo),
        T_velo_imu=T_velo_imu,
        images=SensorStream(raw.image_files, raw.image_stamps_ns).head(frames),
        scans=SensorStream(raw.scan_files, raw.scan_stamps_ns).head(frames),
        oxts=oxts,
    )


# ---------------------------------------------------------------------------------------------- convert
CLOUD_FIELDS = ("x", "y", "z", "intensity")
TIME_SIDECAR = "time_ns"


def point_times_ns(raw: RawDrive, i: int, n_points: int) -> np.ndarray | None:
    """Per-point times of scan ``i`` (int64 ns relative to its stamp) from the sidecar, None without one."""
    path = raw.velo_dir / TIME_SIDECAR / (raw.scan_files[i].stem + ".npy")
    if not path.is_file():
        return None
    times = np.load(path, allow_pickle=False)
    if times.shape != (n_points,) or times.dtype.kind not in "iu":
        raise DataFormatError(f"{path}: {times.dtype} {times.shape} times for a scan of {n_points} points")
    return times.astype(np.int64)


def convert(
    drive: KittiDrive, out: str | Path, storage: str = "mcap", overwrite: bool = False, progress=True
) -> Path:
    """Write the bag; on any error nothing is left at ``out`` (see :class:`rosbag_io.BagWriteSession`)."""
    events = [(int(t), 0, i) for i, t in enumerate(drive.scans.stamps_ns)]
    events += [(int(t), 1, i) for i, t in enumerate(drive.images.stamps_ns)]
    if drive.oxts is not None:
        events += [(int(t), 2, i) for i, t in enumerate(drive.oxts.stamps_ns)]
    events.sort()
    t0 = events[0][0]
    poses = None
    if drive.oxts is not None:
        poses = oxts_poses(np.stack([drive.raw.oxts(i) for i in range(len(drive.oxts.files))]))

    with rb.BagWriteSession(out, storage=storage, overwrite=overwrite) as bag:
        sensor_qos = [rb.reliable_qos(10)]
        bag.add_topic(IMAGE_TOPIC, "sensor_msgs/msg/Image", sensor_qos)
        bag.add_topic(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", sensor_qos)
        bag.add_topic(POINTS_TOPIC, "sensor_msgs/msg/PointCloud2", sensor_qos)
        bag.add_topic(TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", [rb.reliable_qos(1, transient_local=True)])
        static = [rb.transform_stamped(invert(drive.T_cam_velo), t0, VELO_FRAME, CAMERA_FRAME)]
        if drive.T_velo_imu is not None:
            static.append(rb.transform_stamped(invert(drive.T_velo_imu), t0, IMU_FRAME, VELO_FRAME))
        bag.write(TF_STATIC_TOPIC, t0, rb.tf_message(static))
        if poses is not None:
            bag.add_topic(TF_TOPIC, "tf2_msgs/msg/TFMessage", [rb.reliable_qos(100)])

        for t_ns, kind, i in tqdm(events, desc="kitti2bag", unit="msg", disable=not progress):
            if kind == 0:
                pts = drive.raw.scan(i)
                dt_ns = point_times_ns(drive.raw, i, pts.shape[0])
                if dt_ns is None:
                    msg = rb.pointcloud_msg(pts, t_ns, VELO_FRAME)
                else:
                    cols = np.column_stack([pts, (dt_ns * 1e-9).astype(np.float32)])
                    msg = rb.pointcloud_msg(cols, t_ns, VELO_FRAME, names=(*CLOUD_FIELDS, "time"))
                bag.write(POINTS_TOPIC, t_ns, msg)
            elif kind == 1:
                rgb = drive.raw.image(i)
                if rgb.shape[:2] != (drive.height, drive.width):
                    raise DataFormatError(
                        f"{drive.images.files[i]}: image is {rgb.shape[1]}x{rgb.shape[0]}, calib says "
                        f"{drive.width}x{drive.height}"
                    )
                # CameraInfo first: a node that needs it for the image then has it when the image arrives.
                info = rb.camera_info_msg(
                    drive.K, drive.width, drive.height, t_ns, CAMERA_FRAME, drive.P, drive.R
                )
                info.d = np.asarray(drive.D, np.float64)
                bag.write(INFO_TOPIC, t_ns, info)
                bag.write(IMAGE_TOPIC, t_ns, rb.image_msg(rgb, t_ns, CAMERA_FRAME, "rgb8"))
            else:
                tf = rb.transform_stamped(poses[i], t_ns, WORLD_FRAME, IMU_FRAME)
                bag.write(TF_TOPIC, t_ns, rb.tf_message([tf]))
    return Path(out)


# ---------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("drive", type=Path, help="KITTI raw drive directory (…_sync or …_extract)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output bag directory (must not exist)"
    )
    parser.add_argument(
        "--storage", choices=sorted(rb.STORAGE_SUFFIX), default="mcap", help="rosbag2 storage"
    )
    parser.add_argument(
        "--layout",
        choices=("auto", "sync", "extract"),
        default="auto",
        help="raw layout (auto: from the name)",
    )
    parser.add_argument(
        "--frames", type=int, default=None, help="convert only the first N frames of each sensor"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag at OUTPUT")


def run(args: argparse.Namespace) -> int:
    if args.frames is not None and args.frames < 1:
        raise DataFormatError(f"--frames must be >= 1, got {args.frames}")
    drive = load_drive(args.drive, args.layout, args.frames)
    out = convert(drive, args.output, args.storage, args.overwrite)
    summary = rb.read_summary(out)
    print(
        f"wrote {out} ({summary.storage}, {summary.message_count} messages, {summary.duration_ns / 1e9:.2f} s)"
    )
    for t in summary.topics.values():
        print(f"  {t.name:42s} {t.msgtype:30s} {t.count:6d}")
    return 0
