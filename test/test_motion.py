"""core.motion: SE(3) maps, constant-velocity deskew, scan-to-image compensation, per-point time fields."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.core import motion
from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.data.synthetic import synthetic_calib

RNG = np.random.default_rng(9)


def _pose(x=0.0, y=0.0, yaw=0.0, z=1.73) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[:3, 3] = [x, y, z]
    return T


@pytest.mark.parametrize("scale", [0.0, 1e-7, 1e-3, 0.5, 2.5])
def test_se3_exp_log_round_trip(scale):
    for _ in range(5):
        xi = np.concatenate([RNG.normal(0, 3, 3), RNG.normal(0, 1, 3)])
        xi[3:] *= scale / max(np.linalg.norm(xi[3:]), 1e-12)
        T = motion.se3_exp(xi)
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(motion.se3_log(T), xi, atol=1e-9)


def test_velocity_from_poses_recovers_a_constant_twist():
    v, w = np.array([10.0, 0.3, 0.0]), np.array([0.0, 0.0, 0.4])
    T_a = _pose(5.0, -1.0, 0.2)
    T_b = T_a @ motion.se3_exp(np.concatenate([v, w]) * 0.1)
    vel = motion.velocity_from_poses(T_a, 1_000_000_000, T_b, 1_100_000_000)
    np.testing.assert_allclose(vel.v_mps, v, atol=1e-9)
    np.testing.assert_allclose(vel.w_radps, w, atol=1e-9)
    np.testing.assert_allclose(motion.motion_over(vel, 0.1), np.linalg.solve(T_a, T_b), atol=1e-9)
    with pytest.raises(motion.MotionError, match="t_b > t_a"):
        motion.velocity_from_poses(T_a, 5, T_b, 5)


def _sweep(v_mps=10.0, yaw_rate=0.3, n=20_000):
    """Static world points measured by a LiDAR moving with a constant twist over a 100 ms sweep."""
    vel = motion.Velocity(np.array([v_mps, 0.0, 0.0]), np.array([0.0, 0.0, yaw_rate]))
    T0 = _pose(100.0, 2.0, 0.1)  # pose at the scan stamp
    world = np.column_stack([RNG.uniform(90, 160, n), RNG.uniform(-20, 25, n), RNG.uniform(0, 4, n)])
    dt_ns = RNG.integers(-50_000_000, 50_000_000, n)
    measured = np.empty_like(world)
    for i in range(0, n, 500):  # per firing group: the sensor pose at its own time
        sl = slice(i, i + 500)
        for k in np.unique(dt_ns[sl]):
            m = np.flatnonzero(dt_ns[sl] == k) + i
            T_k = T0 @ motion.motion_over(vel, k * 1e-9)
            measured[m] = transform_points(invert(T_k), world[m])
    at_stamp = transform_points(invert(T0), world)
    return vel, measured, dt_ns, at_stamp


def test_deskew_is_exact_for_constant_velocity():
    vel, measured, dt_ns, at_stamp = _sweep()
    assert np.abs(measured - at_stamp).max() > 0.4  # 10 m/s x 50 ms
    out, done = motion.compensate(measured.astype(np.float32), dt_ns, vel)
    assert done and out.dtype == np.float32
    np.testing.assert_allclose(out, at_stamp, atol=1e-4)  # float32 input and output: 0.1 mm
    # Extra columns (intensity) ride along; no times or no velocity: unchanged.
    with4 = np.column_stack([measured, np.arange(len(measured))])
    np.testing.assert_array_equal(motion.deskew(with4, dt_ns * 1e-9, vel)[:, 3], with4[:, 3])
    assert motion.compensate(measured, None, vel) == (measured, False)
    assert motion.compensate(measured, dt_ns, None)[1] is False
    with pytest.raises(motion.MotionError, match="times for"):
        motion.deskew(measured, dt_ns[:-1] * 1e-9, vel)


@pytest.mark.parametrize("how", ["twist", "poses"])
def test_scan_50ms_old_at_10mps_lands_within_a_pixel(how):
    """Acceptance: a scan taken 50 ms before the image on a robot at 10 m/s, compensated, within 1 px."""
    cam, T_cam_velo = synthetic_calib()
    vel = motion.Velocity(np.array([10.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.2]))
    T_img = _pose(50.0, 1.0, 0.05)
    t_img, t_scan = 2_000_000_000, 1_950_000_000
    T_scan = T_img @ motion.motion_over(vel, -0.05)
    # Points 6-60 m ahead, inside the image.
    world_in_cam = np.column_stack(
        [RNG.uniform(-4, 4, 3000), RNG.uniform(-1, 1.5, 3000), RNG.uniform(6, 60, 3000)]
    )
    world = transform_points(T_img @ invert(T_cam_velo), world_in_cam)
    scan = transform_points(invert(T_scan), world)  # what the LiDAR measured at t_scan
    u_true, v_true, _ = cam.project(world_in_cam)
    if how == "twist":
        T = motion.scan_to_image_transform(T_cam_velo, vel, t_scan, t_img)
    else:  # odometry poses at two times around the scan, as TF would give them
        T_a, T_b = T_img @ motion.motion_over(vel, -0.15), T_img @ motion.motion_over(vel, -0.05)
        est = motion.velocity_from_poses(T_a, t_img - 150_000_000, T_b, t_scan)
        T = motion.scan_to_image_transform(T_cam_velo, est, t_scan, t_img)
    u, v, _ = cam.project(transform_points(T, scan))
    err = np.hypot(u - u_true, v - v_true)
    assert err.max() < 1.0, err.max()
    u0, v0, _ = cam.project(transform_points(T_cam_velo, scan))  # uncompensated: 0.5 m off
    assert np.percentile(np.hypot(u0 - u_true, v0 - v_true), 50) > 5.0


# ---------------------------------------------------------------------------------------------- times
STAMP = 1_700_000_000_123_456_789


@pytest.mark.parametrize(
    ("driver", "field", "values", "expected_ns"),
    [
        ("ouster t uint32 ns from scan start", "t", np.array([0, 50_000, 99_999_000], np.uint32),
         [0, 50_000, 99_999_000]),
        ("velodyne time float32 s relative (negative)", "time", np.array([-0.0999, -0.05, 0.0], np.float32),
         [-99_900_000, -50_000_000, 0]),
        ("livox offset_time uint32 ns", "offset_time", np.array([10, 2_000_000], np.uint32), [10, 2_000_000]),
        ("hesai timestamp float64 absolute s", "timestamp",
         np.array([STAMP * 1e-9, STAMP * 1e-9 + 0.05]), [0, 50_000_000]),
        ("robosense timestamp float64 absolute s", "timestamp",
         np.array([STAMP * 1e-9 - 0.1, STAMP * 1e-9 - 0.02]), [-100_000_000, -20_000_000]),
        ("uint64 absolute ns", "timestamp", np.array([STAMP, STAMP + 7], np.uint64), [0, 7]),
        ("livox_ros_driver2 timestamp float64 absolute ns", "timestamp",
         np.array([STAMP, STAMP + 30_000_000], np.float64), [0, 30_000_000]),
        ("float64 relative s", "time_stamp", np.array([0.0, 0.0999]), [0, 99_900_000]),
    ],
)  # fmt: skip
def test_normalise_point_times_per_driver(driver, field, values, expected_ns):
    out = motion.normalise_point_times(values, STAMP, field)
    assert out.dtype == np.int64
    np.testing.assert_allclose(out, expected_ns, atol=1000, err_msg=driver)  # float64 epoch: < 1 us


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.array([STAMP * 1e-9], np.float32), "absolute seconds in float32"),
        (np.array([0.0, 2.0]), "spans 2.000 s"),
        (np.array([0.0, np.nan]), "non-finite"),
        (np.array([5.0, 5.01]), "not times of this sweep"),
        (np.array(["a"]), "non-numeric"),
    ],
)
def test_normalise_point_times_rejects_what_a_sweep_cannot_be(values, match):
    with pytest.raises(motion.MotionError, match=match):
        motion.normalise_point_times(values, STAMP, "t")


def test_status_strings():
    assert motion.status("off") == "no motion compensation"
    assert motion.status("", detail="no odometry TF") == "no motion compensation (no odometry TF)"
    assert motion.status("tf", "odom", True) == "motion compensation: tf (odom), deskew on"
    assert motion.status("lidar_odometry", deskewed=False) == "motion compensation: lidar_odometry, deskew off"
