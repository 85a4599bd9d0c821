"""KITTI depth-completion format: uint16 PNG depth (metres x 256, 0 = no data) and the
``val_selection_cropped`` layout (``image/``, ``velodyne_raw/``, ``groundtruth_depth/``, ``intrinsics/``).

File names follow the official layout: ``<drive>_image_<frame>_image_02.png`` in ``image/``, with
``velodyne_raw`` / ``groundtruth_depth`` replacing the second ``image`` token in the other folders, and
``intrinsics/<...>_image_02.txt`` holding the 3x3 K as 9 numbers on one line.

Optional sidecar of this project (``depth-nodes make-gt`` and ``depth-nodes synth`` write it):
``poses/<...>_image_02.txt``, the camera pose ``T_world_cam`` of the frame as 16 numbers (row-major 4 x 4,
metres; camera axes x right, y down, z forward), in one world frame per layout -- what photometric
self-supervision between consecutive frames needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.errors import DataFormatError

#: KITTI stores depth as uint16 = metres * 256; 0 means no data.
DEPTH_SCALE = 256.0
MAX_PNG_DEPTH_M = 65535 / DEPTH_SCALE
LAYOUT_DIRS = ("image", "velodyne_raw", "groundtruth_depth", "intrinsics")
POSES_DIR = "poses"


def read_depth_png(path: str | Path) -> np.ndarray:
    """Read a KITTI depth PNG as H x W float32 metres (0 = no data)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"depth PNG not found: {path}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataFormatError(f"unreadable PNG (corrupt or not an image): {path}")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DataFormatError(
            f"{path}: KITTI depth PNGs are single-channel uint16, got {raw.dtype} x {raw.shape}"
        )
    return raw.astype(np.float32) / DEPTH_SCALE


def write_depth_png(path: str | Path, depth_m: np.ndarray) -> None:
    """Write metres as a KITTI uint16 PNG; NaN/inf/<=0 become 0 (no data), values clip at 255.99 m."""
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise DataFormatError(f"depth must be H x W, got shape {depth.shape}")
    ok = np.isfinite(depth) & (depth > 0)
    raw = np.zeros(depth.shape, np.uint16)
    raw[ok] = np.clip(np.round(depth[ok] * DEPTH_SCALE), 1, 65535).astype(np.uint16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), raw):
        raise DataFormatError(f"could not write PNG: {path}")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read a colour image as H x W x 3 uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataFormatError(f"unreadable image (corrupt or not an image): {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_rgb(path: str | Path, rgb: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)):
        raise DataFormatError(f"could not write image: {path}")


def read_intrinsics(path: str | Path) -> np.ndarray:
    """Read a KITTI DC intrinsics file (9 numbers, row-major K) as 3x3 float64."""
    path = Path(path)
    try:
        vals = np.array(path.read_text().split(), dtype=np.float64)
    except FileNotFoundError as exc:
        raise DataFormatError(f"intrinsics file not found: {path}") from exc
    except ValueError as exc:
        raise DataFormatError(f"{path}: intrinsics must be 9 numbers") from exc
    if vals.size != 9:
        raise DataFormatError(f"{path}: intrinsics must hold 9 numbers (3x3 K), found {vals.size}")
    return vals.reshape(3, 3)


def read_pose(path: str | Path | None) -> np.ndarray | None:
    """Read a ``poses/`` sidecar (16 numbers, row-major 4 x 4 ``T_world_cam``); None when absent."""
    if path is None or not Path(path).is_file():
        return None
    path = Path(path)
    try:
        vals = np.array(path.read_text().split(), dtype=np.float64)
    except ValueError as exc:
        raise DataFormatError(f"{path}: a pose must be 16 numbers") from exc
    if vals.size != 16 or not np.all(np.isfinite(vals)):
        raise DataFormatError(f"{path}: a pose must hold 16 finite numbers (4x4 T_world_cam), found {vals.size}")
    T = vals.reshape(4, 4)
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6):
        raise DataFormatError(f"{path}: the last row of a 4x4 pose must be 0 0 0 1, got {T[3]}")
    return T


def write_pose(path: str | Path, T_world_cam: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    T = np.asarray(T_world_cam, np.float64).reshape(4, 4)
    path.write_text(" ".join(f"{v:.9e}" for v in T.reshape(-1)) + "\n")


def write_intrinsics(path: str | Path, K: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(" ".join(f"{v:.6e}" for v in np.asarray(K, np.float64).reshape(-1)) + "\n")


@dataclass(frozen=True)
class DCFrame:
    """Paths of one frame of the depth-completion layout (``groundtruth`` may be None for test sets)."""

    name: str
    image: Path
    velodyne_raw: Path
    groundtruth: Path | None
    intrinsics: Path | None
    pose: Path | None = None  # poses/ sidecar (T_world_cam), None when the layout has none

    def load(self) -> dict[str, np.ndarray | None]:
        """Load ``image`` (RGB uint8), ``sparse`` and ``groundtruth`` (metres, 0 = none), ``K``."""
        return {
            "image": read_rgb(self.image),
            "sparse": read_depth_png(self.velodyne_raw),
            "groundtruth": read_depth_png(self.groundtruth) if self.groundtruth else None,
            "K": read_intrinsics(self.intrinsics) if self.intrinsics else None,
            "T_world_cam": read_pose(self.pose),
        }


def _swap(name: str, folder: str) -> str:
    """2011_09_26_drive_0002_sync_image_0000000005_image_02.png -> ..._<folder>_0000000005_image_02.png"""
    return name.replace("_image_", f"_{folder}_", 1)


def list_frames(root: str | Path) -> list[DCFrame]:
    """List the frames of a ``val_selection_cropped``-style directory, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"data directory not found: {root}")
    img_dir = root / "image"
    if not img_dir.is_dir():
        raise DataFormatError(
            f"{root} is not a KITTI depth-completion layout: missing image/ (expects {LAYOUT_DIRS})"
        )
    frames = []
    for img in sorted(img_dir.glob("*.png")):
        name = img.name
        vel = root / "velodyne_raw" / _swap(name, "velodyne_raw")
        if not vel.is_file():
            raise DataFormatError(f"missing sparse depth for {name}: {vel}")
        gt = root / "groundtruth_depth" / _swap(name, "groundtruth_depth")
        intr = root / "intrinsics" / (Path(name).stem + ".txt")
        pose = root / POSES_DIR / (Path(name).stem + ".txt")
        frames.append(
            DCFrame(
                img.stem, img, vel, gt if gt.is_file() else None, intr if intr.is_file() else None,
                pose if pose.is_file() else None,
            )
        )  # fmt: skip
    if not frames:
        raise DataFormatError(f"no frames in {img_dir} (expected *.png)")
    return frames


def frame_filename(drive: str, frame: int, folder: str = "image") -> str:
    """Official file name of ``frame`` of ``drive`` in ``folder`` (image, velodyne_raw, groundtruth_depth)."""
    return f"{drive}_{folder}_{frame:010d}_image_02.png"


def write_frame(
    root: str | Path,
    drive: str,
    frame: int,
    image: np.ndarray,
    sparse: np.ndarray,
    groundtruth: np.ndarray | None,
    K: np.ndarray,
    T_world_cam: np.ndarray | None = None,
) -> None:
    """Write one frame in the ``val_selection_cropped`` layout (+ the ``poses/`` sidecar when given)."""
    root = Path(root)
    write_rgb(root / "image" / frame_filename(drive, frame), image)
    write_depth_png(root / "velodyne_raw" / frame_filename(drive, frame, "velodyne_raw"), sparse)
    if groundtruth is not None:
        write_depth_png(
            root / "groundtruth_depth" / frame_filename(drive, frame, "groundtruth_depth"), groundtruth
        )
    write_intrinsics(root / "intrinsics" / (Path(frame_filename(drive, frame)).stem + ".txt"), K)
    if T_world_cam is not None:
        write_pose(root / POSES_DIR / (Path(frame_filename(drive, frame)).stem + ".txt"), T_world_cam)


def crop_bottom_centre(shape: tuple[int, int], width: int = 1216, height: int = 352) -> tuple[int, int]:
    """(x0, y0) of KITTI's bottom-centre 1216 x 352 crop for an image of ``shape`` (H, W)."""
    H, W = shape
    if H < height or W < width:
        raise DataFormatError(f"image {W}x{H} is smaller than the {width}x{height} crop")
    return (W - width) // 2, H - height
