"""The synthetic rig: KITTI 2011_09_26 calibration (cam 2 rectified, velodyne) and OXTS-like records."""

from __future__ import annotations

import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.data.kitti_calib import compose_T_cam_velo

# KITTI 2011_09_26 calibration (cam 2 rectified; velodyne -> cam 0).
P_RECT_02 = np.array(
    [
        [7.215377e02, 0.0, 6.095593e02, 4.485728e01],
        [0.0, 7.215377e02, 1.728540e02, 2.163791e-01],
        [0, 0, 1, 2.745884e-03],
    ]
)
P_RECT_03 = np.array(
    [
        [7.215377e02, 0.0, 6.095593e02, -3.395242e02],
        [0.0, 7.215377e02, 1.728540e02, 2.199936e00],
        [0, 0, 1, 2.729905e-03],
    ]
)
R_RECT_00 = np.array(
    [
        [9.999239e-01, 9.837760e-03, -7.445048e-03],
        [-9.869795e-03, 9.999421e-01, -4.278459e-03],
        [7.402527e-03, 4.351614e-03, 9.999631e-01],
    ]
)
VELO_R = np.array(
    [
        [7.533745e-03, -9.999714e-01, -6.166020e-04],
        [1.480249e-02, 7.280733e-04, -9.998902e-01],
        [9.998621e-01, 7.523790e-03, 1.480755e-02],
    ]
)
VELO_T = np.array([-4.069766e-03, -7.631618e-02, -2.717806e-01])
IMAGE_SIZE = (1242, 375)


def cam_to_cam_dict() -> dict:
    """The ``calib_cam_to_cam.txt`` content written with synthetic drives (rectified values are KITTI's)."""
    f, cx, cy = 7.215377e02, 6.095593e02, 1.728540e02
    P0 = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]])
    P1 = P0.copy()
    P1[0, 3] = -3.875744e02
    out: dict = {"calib_time": "09-Jan-2012 13:57:47", "corner_dist": 9.95e-02}
    for c, P in enumerate((P0, P1, P_RECT_02, P_RECT_03)):
        out[f"S_{c:02d}"] = np.array([1392.0, 512.0])
        out[f"K_{c:02d}"] = P[:, :3]
        out[f"D_{c:02d}"] = np.zeros(5)
        out[f"R_{c:02d}"] = np.eye(3)
        out[f"T_{c:02d}"] = np.linalg.solve(P[:, :3], P[:, 3])
        out[f"S_rect_{c:02d}"] = np.array(IMAGE_SIZE, np.float64)
        out[f"R_rect_{c:02d}"] = R_RECT_00 if c == 0 else np.eye(3)
        out[f"P_rect_{c:02d}"] = P
    return out


def synthetic_calib(
    width: int = IMAGE_SIZE[0], height: int = IMAGE_SIZE[1]
) -> tuple[CameraModel, np.ndarray]:
    """Camera (KITTI cam 2 rectified; K rescaled for another image size) and ``T_cam_velo`` (4x4)."""
    camera, _ = CameraModel.from_kitti_projection(P_RECT_02, *IMAGE_SIZE)
    if (width, height) != IMAGE_SIZE:
        camera = camera.scaled(width, height)
    return camera, compose_T_cam_velo(P_RECT_02, R_RECT_00, VELO_R, VELO_T)


#: Reference for the synthetic OXTS records (Karlsruhe, like KITTI).
OXTS_LAT0_DEG, OXTS_LON0_DEG, OXTS_ALT0_M = 49.011212804408, 8.4228850417969, 112.83492279053
EARTH_RADIUS_M = 6378137.0


def oxts_record(T_world_velo: np.ndarray, speed_mps: float) -> np.ndarray:
    """A 30-value OXTS record for an ego pose (world x = east, y = north; IMU taken at the LiDAR)."""
    scale = np.cos(np.radians(OXTS_LAT0_DEG))
    mx0 = scale * np.radians(OXTS_LON0_DEG) * EARTH_RADIUS_M
    my0 = scale * EARTH_RADIUS_M * np.log(np.tan(np.radians(90 + OXTS_LAT0_DEG) / 2))
    mx, my = mx0 + T_world_velo[0, 3], my0 + T_world_velo[1, 3]
    lon = np.degrees(mx / (scale * EARTH_RADIUS_M))
    lat = np.degrees(2 * np.arctan(np.exp(my / (scale * EARTH_RADIUS_M)))) - 90
    yaw = float(np.arctan2(T_world_velo[1, 0], T_world_velo[0, 0]))
    rec = np.zeros(30)
    rec[:6] = [lat, lon, OXTS_ALT0_M + T_world_velo[2, 3], 0.0, 0.0, yaw]
    rec[6:11] = [speed_mps * np.sin(yaw), speed_mps * np.cos(yaw), speed_mps, 0.0, 0.0]  # vn ve vf vl vu
    rec[11:23] = 0.0
    rec[22] = 9.81  # az (gravity), like a level IMU
    rec[23:30] = [0.02, 0.02, 0.01, 10, 4, 5, 5]  # pos_accuracy vel_accuracy navstat numsats posmode...
    return rec
