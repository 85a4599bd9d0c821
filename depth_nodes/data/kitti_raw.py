"""KITTI raw drives: reader and writer of ``<date>/<date>_drive_XXXX_{sync,extract}/``.

Layout: ``image_0X/data/NNNNNNNNNN.png`` + ``image_0X/timestamps.txt``; ``velodyne_points/data/*.bin``
(float32 x, y, z, reflectance; the unsynced *extract* layout stores ``*.txt`` with one ``x y z i`` line
per point) + ``velodyne_points/timestamps{,_start,_end}.txt``; optional ``oxts/data/*.txt`` (30 values)
+ ``oxts/timestamps.txt``; calibration files in the date directory (or inside the drive directory).
This project also writes ``velodyne_points/rings/NNNNNNNNNN.npy`` (int16 ring id per point, 0 = top ring,
same order as the ``.bin``) for ring-thinning protocols; real KITTI drives have no ring ids.
Timestamps (``2011-09-26 13:02:25.964389445``) are parsed to exact integer nanoseconds since the epoch
(UTC), without float rounding.
"""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.data.kitti_calib import kitti_velo_to_cam
from depth_nodes.data.kitti_depth import read_rgb, write_rgb
from depth_nodes.errors import DataFormatError

N_OXTS_FIELDS = 30


def parse_timestamp(text: str) -> int:
    """``'2011-09-26 13:02:25.964389445'`` -> integer nanoseconds since the Unix epoch (UTC)."""
    s = text.strip()
    date_part, _, frac = s.partition(".")
    try:
        tm = time.strptime(date_part, "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise DataFormatError(
            f"bad KITTI timestamp {s!r} (expected 'YYYY-MM-DD HH:MM:SS.fffffffff')"
        ) from exc
    if frac and (not frac.isdigit() or len(frac) > 9):
        raise DataFormatError(f"bad fractional seconds in KITTI timestamp {s!r}")
    return calendar.timegm(tm) * 1_000_000_000 + int(frac.ljust(9, "0") or 0)


def format_timestamp(ns: int) -> str:
    """Inverse of :func:`parse_timestamp` (always 9 fractional digits)."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)) + f".{frac:09d}"


def read_timestamps(path: str | Path) -> np.ndarray:
    """Read a KITTI ``timestamps.txt`` as int64 nanoseconds."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"timestamps file not found: {path}")
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(parse_timestamp(line))
        except DataFormatError as exc:
            raise DataFormatError(f"{path}:{lineno}: {exc}") from exc
    return np.array(out, dtype=np.int64)


def write_timestamps(path: str | Path, stamps_ns) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(format_timestamp(int(s)) + "\n" for s in stamps_ns))


def read_velodyne(path: str | Path) -> np.ndarray:
    """Read one scan (``.bin`` float32 x4 or ``.txt`` 'x y z i' lines) as N x 4 float32."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"velodyne scan not found: {path}")
    if path.suffix == ".bin":
        size = path.stat().st_size
        if size % 16:
            raise DataFormatError(
                f"{path}: {size} bytes is not a multiple of 16 (float32 x, y, z, intensity per point)"
            )
        return np.fromfile(path, dtype="<f4").reshape(-1, 4)
    if path.suffix == ".txt":
        try:
            vals = np.loadtxt(path, dtype=np.float32, ndmin=2)
        except ValueError as exc:
            raise DataFormatError(f"{path}: not 'x y z intensity' numbers per line ({exc})") from exc
        if vals.size == 0:
            return np.zeros((0, 4), np.float32)
        if vals.shape[1] != 4:
            raise DataFormatError(f"{path}: expected 4 values per line, found {vals.shape[1]}")
        return vals
    raise DataFormatError(f"{path}: unknown velodyne file type (expected .bin or .txt)")


def write_velodyne(path: str | Path, points: np.ndarray) -> None:
    """Write N x 4 points as ``.bin`` (float32 little-endian) or ``.txt`` by the file's suffix."""
    path = Path(path)
    pts = np.asarray(points, np.float32)
    if pts.ndim != 2 or pts.shape[1] != 4:
        raise DataFormatError(f"velodyne points must be N x 4 (x, y, z, intensity), got {pts.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".txt":
        np.savetxt(path, pts, fmt="%.6f")
    else:
        pts.astype("<f4").tofile(path)


class RawDrive:
    """Reader of one KITTI raw drive directory (synced or extract layout).

    ``n_frames`` counts camera images; ``n_scans`` velodyne scans (equal in the synced layout, where a
    mismatch is an error). Data files are read lazily per frame.
    """

    def __init__(self, path: str | Path, cam: int = 2) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataFormatError(f"KITTI raw drive directory not found: {self.path}")
        self.cam = cam
        self.image_dir = self.path / f"image_{cam:02d}"
        self.velo_dir = self.path / "velodyne_points"
        self.image_files = sorted((self.image_dir / "data").glob("*.png"))
        if not self.image_files:
            raise DataFormatError(f"{self.path}: no images in image_{cam:02d}/data/*.png")
        self.scan_files = sorted((self.velo_dir / "data").glob("*.bin")) or sorted(
            (self.velo_dir / "data").glob("*.txt")
        )
        if not self.scan_files:
            raise DataFormatError(f"{self.path}: no scans in velodyne_points/data/ (*.bin or *.txt)")
        self.image_stamps_ns = read_timestamps(self.image_dir / "timestamps.txt")
        self.scan_stamps_ns = read_timestamps(self.velo_dir / "timestamps.txt")
        self._check_count(len(self.image_files), self.image_stamps_ns, self.image_dir / "timestamps.txt")
        self._check_count(len(self.scan_files), self.scan_stamps_ns, self.velo_dir / "timestamps.txt")
        self.synced = not self.path.name.endswith("_extract")
        if self.synced and len(self.image_files) != len(self.scan_files):
            raise DataFormatError(
                f"{self.path}: synced drive has {len(self.image_files)} images but {len(self.scan_files)} scans"
            )
        self._camera, self._T = kitti_velo_to_cam(self.path, cam)
        oxts = self.path / "oxts"
        self.oxts_files = sorted((oxts / "data").glob("*.txt")) if oxts.is_dir() else []
        self.oxts_stamps_ns = None
        if self.oxts_files:
            self.oxts_stamps_ns = read_timestamps(oxts / "timestamps.txt")
            self._check_count(len(self.oxts_files), self.oxts_stamps_ns, oxts / "timestamps.txt")

    @staticmethod
    def _check_count(n_files: int, stamps: np.ndarray, path: Path) -> None:
        if stamps.size != n_files:
            raise DataFormatError(f"{path}: {stamps.size} timestamps for {n_files} data files")

    @property
    def n_frames(self) -> int:
        return len(self.image_files)

    @property
    def n_scans(self) -> int:
        return len(self.scan_files)

    @property
    def has_oxts(self) -> bool:
        return bool(self.oxts_files)

    @property
    def T_cam_velo(self) -> np.ndarray:
        """4x4 velodyne -> rectified camera ``cam`` (KITTI devkit composition)."""
        return self._T.copy()

    def camera(self) -> CameraModel:
        """The rectified camera (K from ``P_rect_0X``, no distortion)."""
        return self._camera

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as H x W x 3 uint8 RGB."""
        return read_rgb(self.image_files[i])

    def scan(self, i: int) -> np.ndarray:
        """Scan ``i`` as N x 4 float32 (x, y, z, intensity) in the velodyne frame."""
        return read_velodyne(self.scan_files[i])

    def rings(self, i: int) -> np.ndarray | None:
        """Ring ids of scan ``i`` (int16, 0 = top) when the drive has the ``rings/`` sidecar, else None."""
        path = self.velo_dir / "rings" / (self.scan_files[i].stem + ".npy")
        if not path.is_file():
            return None
        rings = np.load(path, allow_pickle=False)
        n = self.scan(i).shape[0]
        if rings.shape != (n,):
            raise DataFormatError(f"{path}: {rings.shape} ring ids for a scan of {n} points")
        return rings.astype(np.int16, copy=False)

    def oxts(self, i: int) -> np.ndarray:
        """OXTS record ``i`` (30 float64: lat, lon, alt, roll, pitch, yaw, velocities, ...)."""
        if not self.oxts_files:
            raise DataFormatError(f"{self.path}: drive has no oxts/ data")
        path = self.oxts_files[i]
        try:
            vals = np.array(path.read_text().split(), dtype=np.float64)
        except ValueError as exc:
            raise DataFormatError(f"{path}: OXTS record is not numeric") from exc
        if vals.size != N_OXTS_FIELDS:
            raise DataFormatError(f"{path}: OXTS record needs {N_OXTS_FIELDS} values, has {vals.size}")
        return vals


def frame_name(i: int) -> str:
    return f"{i:010d}"


def write_raw_frame(
    drive_dir: str | Path,
    i: int,
    image: np.ndarray,
    points: np.ndarray,
    rings: np.ndarray | None = None,
    oxts: np.ndarray | None = None,
    cam: int = 2,
    velodyne_suffix: str = ".bin",
) -> None:
    """Write frame ``i``'s image, scan (and ring ids, OXTS record) into a raw drive directory."""
    d = Path(drive_dir)
    write_rgb(d / f"image_{cam:02d}" / "data" / f"{frame_name(i)}.png", image)
    write_velodyne(d / "velodyne_points" / "data" / f"{frame_name(i)}{velodyne_suffix}", points)
    if rings is not None:
        (d / "velodyne_points" / "rings").mkdir(parents=True, exist_ok=True)
        np.save(d / "velodyne_points" / "rings" / f"{frame_name(i)}.npy", np.asarray(rings, np.int16))
    if oxts is not None:
        path = d / "oxts" / "data" / f"{frame_name(i)}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(repr(float(v)) for v in np.asarray(oxts).reshape(-1)) + "\n")


def write_raw_timestamps(
    drive_dir: str | Path,
    image_stamps_ns,
    scan_stamps_ns,
    scan_period_ns: int = 100_000_000,
    oxts_stamps_ns=None,
    cam: int = 2,
) -> None:
    """Write the ``timestamps*.txt`` files; scan start/end are +-half a revolution around the scan stamp."""
    d = Path(drive_dir)
    write_timestamps(d / f"image_{cam:02d}" / "timestamps.txt", image_stamps_ns)
    scans = np.asarray(scan_stamps_ns, np.int64)
    write_timestamps(d / "velodyne_points" / "timestamps.txt", scans)
    write_timestamps(d / "velodyne_points" / "timestamps_start.txt", scans - scan_period_ns // 2)
    write_timestamps(d / "velodyne_points" / "timestamps_end.txt", scans + scan_period_ns // 2)
    if oxts_stamps_ns is not None:
        write_timestamps(d / "oxts" / "timestamps.txt", oxts_stamps_ns)
