"""KITTI raw calibration files: ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt``.

Format (one key per line): ``KEY: v1 v2 ...``; ``calib_time`` is a date string, everything else numbers.
``calib_cam_to_cam.txt`` holds ``corner_dist`` and, for xx in 00..03, ``S_xx K_xx D_xx R_xx T_xx S_rect_xx
R_rect_xx P_rect_xx``; ``calib_velo_to_cam.txt`` holds ``R T delta_f delta_c`` (velodyne -> camera 0,
unrectified).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.errors import CalibrationError, DataFormatError

CAM_TO_CAM = "calib_cam_to_cam.txt"
VELO_TO_CAM = "calib_velo_to_cam.txt"

#: Shapes of the per-camera keys of calib_cam_to_cam.txt (suffix _00 .. _03).
CAM_KEY_SHAPES: dict[str, tuple[int, ...]] = {
    "S": (2,),
    "K": (3, 3),
    "D": (5,),
    "R": (3, 3),
    "T": (3,),
    "S_rect": (2,),
    "R_rect": (3, 3),
    "P_rect": (3, 4),
}
VELO_KEY_SHAPES: dict[str, tuple[int, ...]] = {"R": (3, 3), "T": (3,), "delta_f": (2,), "delta_c": (2,)}


def read_calib_file(path: str | Path) -> dict[str, np.ndarray | str]:
    """Parse a KITTI calibration text file into ``{key: float64 1-D array}`` (``calib_time``: str)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise CalibrationError(f"calibration file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"unreadable calibration file {path}: {exc}") from exc
    out: dict[str, np.ndarray | str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise CalibrationError(f"{path}:{lineno}: expected 'KEY: values', got {line.strip()[:60]!r}")
        if key == "calib_time":
            out[key] = value.strip()
            continue
        try:
            out[key] = np.array(value.split(), dtype=np.float64)
        except ValueError as exc:
            raise CalibrationError(f"{path}:{lineno}: key {key!r} has non-numeric values") from exc
    return out


def _get(calib: dict, key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if key not in calib:
        raise CalibrationError(f"{path}: missing key {key!r}")
    vals = np.asarray(calib[key])
    if vals.size != int(np.prod(shape)):
        raise CalibrationError(f"{path}: key {key!r} needs {int(np.prod(shape))} values, has {vals.size}")
    if not np.all(np.isfinite(vals)):
        raise CalibrationError(f"{path}: key {key!r} contains NaN or inf")
    return vals.reshape(shape)


def read_cam_to_cam(path: str | Path, cams: tuple[int, ...] = (0, 1, 2, 3)) -> dict[str, np.ndarray | str]:
    """Read ``calib_cam_to_cam.txt``; returns reshaped arrays (``P_rect_02`` 3x4, ``R_rect_00`` 3x3, ...).

    Only ``S_rect_xx``, ``R_rect_00`` and ``P_rect_xx`` of the cameras in ``cams`` are required (the
    rectified geometry); other keys are reshaped when present.
    """
    path = Path(path)
    raw = read_calib_file(path)
    out: dict[str, np.ndarray | str] = {"calib_time": str(raw.get("calib_time", ""))}
    if "corner_dist" in raw:
        out["corner_dist"] = float(np.asarray(raw["corner_dist"]).reshape(-1)[0])
    required = {"R_rect_00"} | {f"{k}_{c:02d}" for c in cams for k in ("S_rect", "P_rect")}
    for c in range(4):
        for base, shape in CAM_KEY_SHAPES.items():
            key = f"{base}_{c:02d}"
            if key in raw or key in required:
                out[key] = _get(raw, key, shape, path)
    return out


def read_velo_to_cam(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``calib_velo_to_cam.txt``; returns ``(R 3x3, T 3)`` (velodyne -> unrectified camera 0)."""
    path = Path(path)
    raw = read_calib_file(path)
    return _get(raw, "R", (3, 3), path), _get(raw, "T", (3,), path)


def _fmt(values) -> str:
    return " ".join(f"{v:.6e}" for v in np.asarray(values, np.float64).reshape(-1))


def write_cam_to_cam(path: str | Path, calib: dict, calib_time: str = "09-Jan-2012 13:57:47") -> None:
    """Write ``calib_cam_to_cam.txt`` in KITTI's key order from a dict like :func:`read_cam_to_cam`'s."""
    lines = [f"calib_time: {calib.get('calib_time') or calib_time}"]
    lines.append(f"corner_dist: {_fmt([calib.get('corner_dist', 9.95e-02)])}")
    for c in range(4):
        for base in CAM_KEY_SHAPES:
            key = f"{base}_{c:02d}"
            if key in calib:
                lines.append(f"{key}: {_fmt(calib[key])}")
    Path(path).write_text("\n".join(lines) + "\n")


def write_velo_to_cam(
    path: str | Path, R: np.ndarray, T: np.ndarray, calib_time: str = "15-Mar-2012 11:37:16"
) -> None:
    """Write ``calib_velo_to_cam.txt`` (``delta_f``/``delta_c`` are zeros as in KITTI's files)."""
    lines = [
        f"calib_time: {calib_time}",
        f"R: {_fmt(R)}",
        f"T: {_fmt(T)}",
        "delta_f: 0.000000e+00 0.000000e+00",
        "delta_c: 0.000000e+00 0.000000e+00",
    ]
    Path(path).write_text("\n".join(lines) + "\n")


def find_calib_files(calib: str | Path | tuple[str | Path, str | Path]) -> tuple[Path, Path]:
    """Locate ``(cam_to_cam, velo_to_cam)`` from a pair of files, a date directory or a drive directory.

    A drive directory (``<date>/<date>_drive_XXXX_sync``) is searched first, then its parent (KITTI's
    raw download keeps the calib files in the date directory).
    """
    if isinstance(calib, tuple | list):
        c2c, v2c = (Path(p) for p in calib)
    else:
        base = Path(calib)
        if base.is_file():
            base = base.parent
        dirs = (base, base.parent)
        for d in dirs:
            if (d / CAM_TO_CAM).is_file() and (d / VELO_TO_CAM).is_file():
                return d / CAM_TO_CAM, d / VELO_TO_CAM
        # Report the file that is missing where the other one is (else both, in the drive's date dir).
        d = next((d for d in dirs if (d / CAM_TO_CAM).is_file() or (d / VELO_TO_CAM).is_file()), None)
        if d is None:
            raise DataFormatError(f"no {CAM_TO_CAM} / {VELO_TO_CAM} in {base} or {base.parent}")
        c2c, v2c = d / CAM_TO_CAM, d / VELO_TO_CAM
    for p in (c2c, v2c):
        if not p.is_file():
            raise DataFormatError(f"calibration file not found: {p} (looked in the drive and date dirs)")
    return c2c, v2c


def compose_T_cam_velo(P_rect: np.ndarray, R_rect_00: np.ndarray, R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``T_cam_velo = T_camX_rect0 @ R_rect_00 @ [R|T]`` (KITTI devkit), all 4x4 float64."""
    P = np.asarray(P_rect, np.float64).reshape(3, 4)
    T_cam_rect = np.eye(4)
    T_cam_rect[:3, 3] = np.linalg.solve(P[:, :3], P[:, 3])
    R_rect = np.eye(4)
    R_rect[:3, :3] = np.asarray(R_rect_00, np.float64).reshape(3, 3)
    T_velo = np.eye(4)
    T_velo[:3, :3] = np.asarray(R, np.float64).reshape(3, 3)
    T_velo[:3, 3] = np.asarray(T, np.float64).reshape(3)
    return T_cam_rect @ R_rect @ T_velo


def kitti_velo_to_cam(
    calib: str | Path | tuple[str | Path, str | Path], cam: int = 2
) -> tuple[CameraModel, np.ndarray]:
    """Rectified camera ``cam`` and ``T_cam_velo`` (4x4) from KITTI calibration files.

    ``calib`` is a date or drive directory or a ``(cam_to_cam, velo_to_cam)`` pair of paths. The camera
    has K = ``P_rect_0{cam}[:, :3]``, size ``S_rect_0{cam}`` and no distortion (rectified images).
    """
    if cam not in (0, 1, 2, 3):
        raise CalibrationError(f"KITTI camera index must be 0..3, got {cam}")
    c2c_path, v2c_path = find_calib_files(calib)
    c2c = read_cam_to_cam(c2c_path, cams=(cam,))
    R, T = read_velo_to_cam(v2c_path)
    P = c2c[f"P_rect_{cam:02d}"]
    w, h = (int(round(x)) for x in c2c[f"S_rect_{cam:02d}"])
    camera, T_cam_rect = CameraModel.from_kitti_projection(P, w, h)
    R_rect = np.eye(4)
    R_rect[:3, :3] = c2c["R_rect_00"]
    T_velo = np.eye(4)
    T_velo[:3, :3] = R
    T_velo[:3, 3] = T
    return camera, T_cam_rect @ R_rect @ T_velo
