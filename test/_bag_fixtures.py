"""A tiny hand-made KITTI raw drive (real 2011_09_26 calibration, scaled to a small image) for bag tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SCALE = 0.1  # image and intrinsics scaled from KITTI's 1242 x 375
WIDTH, HEIGHT = 124, 38

CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_00: 1.392000e+03 5.120000e+02
K_00: 9.842439e+02 0.000000e+00 6.900000e+02 0.000000e+00 9.808141e+02 2.331966e+02 0.000000e+00 0.000000e+00 1.000000e+00
D_00: -3.728755e-01 2.037299e-01 2.219027e-03 1.383707e-03 -7.233722e-02
R_00: 1.000000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00
T_00: 2.573699e-16 -1.059758e-16 1.614870e-16
S_rect_00: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
P_rect_00: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_02: {s02}
K_02: {k02}
D_02: -3.691481e-01 1.968681e-01 1.353473e-03 5.677587e-04 -6.770705e-02
R_02: 9.999758e-01 -5.267463e-03 -4.552439e-03 5.251945e-03 9.999804e-01 -3.413835e-03 4.570332e-03 3.389843e-03 9.999838e-01
T_02: 5.956621e-02 2.900141e-04 2.577209e-03
S_rect_02: {srect}
R_rect_02: 9.998817e-01 1.511453e-02 -2.841595e-03 -1.511724e-02 9.998853e-01 -9.338510e-04 2.827154e-03 9.766976e-04 9.999955e-01
P_rect_02: {prect}
"""
VELO_TO_CAM = """calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
delta_f: 0.000000e+00 0.000000e+00
delta_c: 0.000000e+00 0.000000e+00
"""
IMU_TO_VELO = """calib_time: 25-May-2012 16:47:16
R: 9.999976e-01 7.553071e-04 -2.035826e-03 -7.854027e-04 9.998898e-01 -1.482298e-02 2.024406e-03 1.482454e-02 9.998881e-01
T: -8.086759e-01 3.195559e-01 -7.997231e-01
"""

P_RECT_02 = np.array(
    [[721.5377, 0.0, 609.5593, 44.85728], [0.0, 721.5377, 172.854, 0.2163791], [0.0, 0.0, 1.0, 0.002745884]]
)
K_02 = np.array([[959.791, 0.0, 696.0217], [0.0, 956.9251, 224.1806], [0.0, 0.0, 1.0]])


def _fmt(a) -> str:
    return " ".join(f"{v:.6e}" for v in np.asarray(a, float).reshape(-1))


def scaled_p_rect() -> np.ndarray:
    P = P_RECT_02.copy()
    P[:2] *= SCALE
    return P


def stamp_line(t_ns: int) -> str:
    t = np.datetime64(int(t_ns), "ns")
    return str(t).replace("T", " ")


def make_raw_drive(
    root: Path,
    n: int = 3,
    layout: str = "sync",
    oxts: bool = True,
    t0_ns: int = 1317042145_594360375,
    seed: int = 0,
) -> Path:
    """Write ``root/2011_09_26/2011_09_26_drive_0001_<layout>`` with ``n`` frames; returns the drive dir."""
    rng = np.random.default_rng(seed)
    date = root / "2011_09_26"
    drive = date / f"2011_09_26_drive_0001_{layout}"
    K = K_02.copy()
    K[:2] *= SCALE
    (date).mkdir(parents=True, exist_ok=True)
    (date / "calib_cam_to_cam.txt").write_text(
        CAM_TO_CAM.format(
            s02=_fmt([WIDTH, HEIGHT]), k02=_fmt(K), srect=_fmt([WIDTH, HEIGHT]), prect=_fmt(scaled_p_rect())
        )
    )
    (date / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    (date / "calib_imu_to_velo.txt").write_text(IMU_TO_VELO)
    sensors = ["image_02", "velodyne_points"] + (["oxts"] if oxts else [])
    n_velo = n if layout == "sync" else n + 1  # extract drives are unsynced: counts may differ
    for sensor in sensors:
        count = n_velo if sensor == "velodyne_points" else n
        offset = {"image_02": 0, "velodyne_points": -50_000_000, "oxts": -1_000_000}[sensor]
        (drive / sensor / "data").mkdir(parents=True, exist_ok=True)
        stamps = [t0_ns + offset + i * 103_000_123 for i in range(count)]
        (drive / sensor / "timestamps.txt").write_text("\n".join(stamp_line(t) for t in stamps) + "\n")
        for i in range(count):
            name = f"{i:010d}"
            if sensor == "image_02":
                img = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                cv2.imwrite(str(drive / sensor / "data" / f"{name}.png"), img)
            elif sensor == "velodyne_points":
                pts = scan_points(i, rng)
                if layout == "sync":
                    pts.tofile(drive / sensor / "data" / f"{name}.bin")
                else:
                    np.savetxt(drive / sensor / "data" / f"{name}.txt", pts, fmt="%.6f")
            else:
                vals = [49.015 + 1e-5 * i, 8.43 + 2e-5 * i, 116.4, 0.0, 0.0, 0.6 + 0.01 * i] + [0.0] * 24
                (drive / sensor / "data" / f"{name}.txt").write_text(" ".join(f"{v:.9f}" for v in vals))
    return drive


def scan_points(i: int, rng: np.random.Generator) -> np.ndarray:
    """A few hundred x, y, z, reflectance float32 points ahead of the car (velodyne frame: x forward)."""
    m = 200 + 10 * i
    pts = np.empty((m, 4), np.float32)
    pts[:, 0] = rng.uniform(5, 40, m)
    pts[:, 1] = rng.uniform(-10, 10, m)
    pts[:, 2] = rng.uniform(-1.7, 1.0, m)
    pts[:, 3] = rng.uniform(0, 1, m)
    return pts
