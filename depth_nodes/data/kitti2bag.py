"""``depth-nodes kitti2bag``: a KITTI raw drive -> rosbag2 (mcap or sqlite3), with the kitti2bag topic names.

Topics (frames as in the common ``kitti2bag`` tool):

=========================================  ============================  =====================
``/kitti/camera_color_left/image_raw``     ``sensor_msgs/Image`` rgb8    ``camera_color_left``
``/kitti/camera_color_left/camera_info``   ``sensor_msgs/CameraInfo``    ``camera_color_left``
``/kitti/velo/pointcloud``                 ``sensor_msgs/PointCloud2``   ``velo_link``
                                           (x, y, z, intensity float32)
``/tf_static``                             velo_link -> camera_color_left (+ imu_link -> velo_link)
``/tf``                                    world -> imu_link from OXTS (when ``oxts/`` exists)
=========================================  ============================  =====================

Layouts: ``*_sync`` drives (rectified images, ``.bin`` scans, same frame count everywhere) and
``*_extract`` drives (unrectified images with distortion, ``.txt`` scans, each sensor with its own count
and timestamps). Calib files are looked up in the drive directory, then in its parent (KITTI's
``2011_09_26/calib_*.txt`` next to ``2011_09_26_drive_0001_sync/``). Stamps come from each sensor's
``timestamps.txt`` at full nanosecond precision; KITTI writes local time without a zone, which is read as UTC.

Camera geometry. Sync: the image is rectified, so CameraInfo is K = P_rect_02[:, :3], D = 0, R = I,
P = [K | 0], and ``/tf_static`` carries the full velo -> camera 2 transform
``T_cam2_velo = T_cam2_rect0 * R_rect_00 * T_cam0_velo`` (``T_cam2_rect0`` is the stereo baseline from
P_rect_02). The projection ``P_rect_02 R_rect_00 T_cam0_velo X`` of the KITTI devkit is reproduced exactly.
Extract: the image is raw, so CameraInfo is K_02 / D_02 (plumb_bob) with R = R_rect_02, P = P_rect_02 and
``T_cam2_velo = [R_02 | T_02] T_cam0_velo``.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depth_nodes.core.transforms import invert, rigid
from depth_nodes.data import rosbag_io as rb
from depth_nodes.data.kitti_depth import read_rgb
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
def read_calib_file(path: Path) -> dict[str, np.ndarray]:
    """KITTI calib text (``key: v v v`` per line) -> arrays; non-numeric lines (``calib_time``) are skipped."""
    if not path.is_file():
        raise CalibrationError(f"calibration file not found: {path}")
    out: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, sep, values = line.partition(":")
        if not sep:
            continue
        try:
            out[key.strip()] = np.array(values.split(), dtype=np.float64)
        except ValueError:
            continue
    return out


def _calib_value(calib: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calib:
        raise CalibrationError(f"{path}: missing key {key!r}")
    if calib[key].size != size:
        raise CalibrationError(f"{path}: {key} needs {size} numbers, got {calib[key].size}")
    return calib[key]


def find_calib(drive_dir: Path, name: str) -> Path:
    """``name`` in the drive directory or its parent (KITTI's date folder)."""
    for folder in (drive_dir, drive_dir.parent):
        if (folder / name).is_file():
            return folder / name
    raise CalibrationError(f"calibration file {name} not found in {drive_dir} or {drive_dir.parent}")


def read_timestamps(path: Path) -> np.ndarray:
    """KITTI ``timestamps.txt`` (``YYYY-MM-DD HH:MM:SS.fffffffff`` per line) -> int64 ns since the epoch."""
    if not path.is_file():
        raise DataFormatError(f"timestamps file not found: {path}")
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise DataFormatError(f"timestamps file is empty: {path}")
    try:
        stamps = np.array([ln.replace(" ", "T", 1) for ln in lines], dtype="datetime64[ns]")
    except ValueError as exc:
        raise DataFormatError(f"{path}: unparsable timestamp ({exc})") from exc
    return stamps.astype(np.int64)


def read_scan(path: Path) -> np.ndarray:
    """A Velodyne scan (``.bin`` float32 x, y, z, reflectance or ``.txt`` with 4 columns) -> N x 4 float32."""
    try:
        if path.suffix == ".bin":
            raw = np.fromfile(path, dtype=np.float32)
            if raw.size % 4:
                raise DataFormatError(f"{path}: size {raw.size * 4} bytes is not a multiple of 16 (x,y,z,i)")
            return raw.reshape(-1, 4)
        pts = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except OSError as exc:
        raise DataFormatError(f"cannot read scan {path}: {exc}") from exc
    except ValueError as exc:
        raise DataFormatError(f"{path}: not a 4-column point list ({exc})") from exc
    if pts.size == 0:
        return np.zeros((0, 4), np.float32)
    if pts.shape[1] != 4:
        raise DataFormatError(f"{path}: expected 4 columns (x y z reflectance), got {pts.shape[1]}")
    return pts


def oxts_poses(files: list[Path]) -> np.ndarray:
    """K x 4 x 4 poses ``T_world_imu`` from OXTS packets, relative to the first (KITTI devkit Mercator)."""
    rows = []
    for f in files:
        vals = f.read_text().split()
        if len(vals) < 6:
            raise DataFormatError(f"{f}: OXTS packet needs >= 6 values (lat lon alt roll pitch yaw)")
        try:
            rows.append([float(v) for v in vals[:6]])
        except ValueError as exc:
            raise DataFormatError(f"{f}: non-numeric OXTS value ({exc})") from exc
    lat, lon, alt, roll, pitch, yaw = np.array(rows).T
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
    n = len(rows)
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


@dataclass
class KittiDrive:
    path: Path
    rectified: bool
    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    T_cam_velo: np.ndarray
    T_velo_imu: np.ndarray | None
    images: SensorStream
    scans: SensorStream
    oxts: SensorStream | None


def _stream(folder: Path, pattern: str, limit: int | None) -> SensorStream:
    data = folder / "data"
    if not data.is_dir():
        raise DataFormatError(f"sensor folder missing: {data}")
    files = sorted(p for p in data.iterdir() if re.fullmatch(pattern, p.name))
    stamps = read_timestamps(folder / "timestamps.txt")
    if not files:
        raise DataFormatError(f"no data files in {data}")
    if len(files) != len(stamps):
        raise DataFormatError(f"{folder}: {len(files)} data files but {len(stamps)} lines in timestamps.txt")
    if limit is not None:
        files, stamps = files[:limit], stamps[:limit]
    return SensorStream(files, stamps)


def load_drive(drive_dir: str | Path, layout: str = "auto", frames: int | None = None) -> KittiDrive:
    """Validate a KITTI raw drive and collect its calibration and file lists (nothing is decoded yet)."""
    drive = Path(drive_dir)
    if not drive.is_dir():
        raise DataFormatError(f"drive directory not found: {drive}")
    if layout == "auto":
        layout = "extract" if drive.name.endswith("_extract") else "sync"
    if layout not in ("sync", "extract"):
        raise DataFormatError(f"unknown layout {layout!r} (auto, sync, extract)")

    cam_path = find_calib(drive, "calib_cam_to_cam.txt")
    velo_path = find_calib(drive, "calib_velo_to_cam.txt")
    cam, velo = read_calib_file(cam_path), read_calib_file(velo_path)
    T_cam0_velo = rigid(
        _calib_value(velo, "R", 9, velo_path).reshape(3, 3), _calib_value(velo, "T", 3, velo_path)
    )
    size = _calib_value(cam, "S_rect_02", 2, cam_path)
    P_rect = _calib_value(cam, "P_rect_02", 12, cam_path).reshape(3, 4)
    if layout == "sync":
        from depth_nodes.core.camera import CameraModel

        R_rect = np.eye(4)
        R_rect[:3, :3] = _calib_value(cam, "R_rect_00", 9, cam_path).reshape(3, 3)
        camera, T_cam_rect = CameraModel.from_kitti_projection(P_rect, int(size[0]), int(size[1]))
        # R_rect_00 is a rotation but KITTI prints it to 6 digits: re-orthonormalise before rigid().
        u, _, vt = np.linalg.svd(R_rect[:3, :3])
        R_rect[:3, :3] = u @ vt
        K, D, R, P = camera.K, np.zeros(5), np.eye(3), None
        T_cam_velo = T_cam_rect @ R_rect @ T_cam0_velo
    else:
        size = _calib_value(cam, "S_02", 2, cam_path)
        K = _calib_value(cam, "K_02", 9, cam_path).reshape(3, 3)
        D = _calib_value(cam, "D_02", 5, cam_path)
        R = _calib_value(cam, "R_rect_02", 9, cam_path).reshape(3, 3)
        P = P_rect
        T_cam2_cam0 = rigid(
            _calib_value(cam, "R_02", 9, cam_path).reshape(3, 3), _calib_value(cam, "T_02", 3, cam_path)
        )
        T_cam_velo = T_cam2_cam0 @ T_cam0_velo
    T_velo_imu = None
    try:
        imu_path = find_calib(drive, "calib_imu_to_velo.txt")
        imu = read_calib_file(imu_path)
        T_velo_imu = rigid(
            _calib_value(imu, "R", 9, imu_path).reshape(3, 3), _calib_value(imu, "T", 3, imu_path)
        )
    except CalibrationError:
        T_velo_imu = None  # optional: only needed to hang /tf (OXTS) onto the sensor frames

    images = _stream(drive / "image_02", r"\d+\.png", frames)
    scans = _stream(drive / "velodyne_points", r"\d+\.(bin|txt)", frames)
    oxts = None
    if (drive / "oxts" / "data").is_dir() and T_velo_imu is not None:
        oxts = _stream(drive / "oxts", r"\d+\.txt", frames)
    return KittiDrive(
        drive,
        layout == "sync",
        int(size[0]),
        int(size[1]),
        K,
        D,
        R,
        P,
        T_cam_velo,
        T_velo_imu,
        images,
        scans,
        oxts,
    )


# ---------------------------------------------------------------------------------------------- convert
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
    poses = oxts_poses(drive.oxts.files) if drive.oxts is not None else None

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
                pts = read_scan(drive.scans.files[i])
                bag.write(POINTS_TOPIC, t_ns, rb.pointcloud_msg(pts, t_ns, VELO_FRAME))
            elif kind == 1:
                rgb = read_rgb(drive.images.files[i])
                if rgb.shape[:2] != (drive.height, drive.width):
                    raise DataFormatError(
                        f"{drive.images.files[i]}: image is {rgb.shape[1]}x{rgb.shape[0]}, calib says "
                        f"{drive.width}x{drive.height}"
                    )
                bag.write(IMAGE_TOPIC, t_ns, rb.image_msg(rgb, t_ns, CAMERA_FRAME, "rgb8"))
                info = rb.camera_info_msg(
                    drive.K, drive.width, drive.height, t_ns, CAMERA_FRAME, drive.P, drive.R
                )
                info.d = np.asarray(drive.D, np.float64)
                bag.write(INFO_TOPIC, t_ns, info)
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
