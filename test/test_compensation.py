"""core.compensation: the node's motion-compensation policy against fake extrinsics (TF with odometry)."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes.core import motion
from depth_nodes.core.compensation import ScanCompensator, resolve_mode
from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.data.synthetic import synthetic_calib
from depth_nodes.errors import DepthNodesError

SPEED = motion.Velocity(np.array([10.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.25]))  # 10 m/s, turning
T0_NS = 5_000_000_000
CAM, T_CAM_LIDAR = synthetic_calib()


class FakeError(DepthNodesError):
    pass


def odom_pose(t_ns: int) -> np.ndarray:
    """``T_odom_lidar``: constant twist from the identity at T0."""
    return motion.motion_over(SPEED, (t_ns - T0_NS) * 1e-9)


class StaticExtrinsics:
    source = "parameters"

    def lookup(self, camera, lidar, stamp_ns):
        return T_CAM_LIDAR


class FakeTf(StaticExtrinsics):
    """tf2-like: static camera <- lidar, odometry odom <- lidar known from ``t_from`` on."""

    source = "tf2"

    def __init__(self, t_from_ns: int = 0, fixed: str = "odom") -> None:
        self.t_from, self.fixed, self.calls = t_from_ns, fixed, []

    def lookup_pose(self, fixed, lidar, t_ns):
        self.calls.append(("pose", fixed, t_ns))
        if fixed != self.fixed or t_ns < self.t_from:
            raise FakeError(f"no {fixed} at {t_ns}")
        return odom_pose(t_ns)

    def lookup_full(self, camera, t_image, lidar, t_scan, fixed):
        self.calls.append(("full", t_image, t_scan, fixed))
        return (
            T_CAM_LIDAR
            @ invert(self.lookup_pose(fixed, lidar, t_image))
            @ self.lookup_pose(fixed, lidar, t_scan)
        )


def world_points(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    in_cam = np.column_stack([rng.uniform(-5, 5, n), rng.uniform(-1.5, 1.5, n), rng.uniform(5, 50, n)])
    return in_cam  # camera frame at the image time


def skewed_sweep(t_image: int, t_scan: int, timed: bool, seed=0):
    """A sweep stamped ``t_scan`` (+-50 ms per point when ``timed``) of points fixed in the world."""
    in_cam = world_points(seed=seed)
    world = transform_points(odom_pose(t_image) @ invert(T_CAM_LIDAR), in_cam)
    rng = np.random.default_rng(seed + 1)
    dt = rng.integers(-50_000_000, 50_000_000, len(world)) if timed else np.zeros(len(world), np.int64)
    pts = np.empty_like(world)
    for k in np.unique(dt):
        m = dt == k
        pts[m] = transform_points(invert(odom_pose(t_scan + int(k))), world[m])
    return pts.astype(np.float32), (dt if timed else None), in_cam


def pixel_error(c, in_cam) -> np.ndarray:
    u, v, _ = CAM.project(transform_points(c.T_cam_lidar, c.points))
    ut, vt, _ = CAM.project(in_cam)
    return np.hypot(u - ut, v - vt)


def test_tf_mode_deskews_and_brings_the_scan_to_the_image_time():
    t_img = T0_NS + 1_000_000_000
    t_scan = t_img - 50_000_000  # the scan stamp 50 ms before the image
    pts, dt, in_cam = skewed_sweep(t_img, t_scan, timed=True)
    comp = ScanCompensator("auto", FakeTf())
    assert comp.mode == "tf"
    c = comp.apply(pts, dt, "lidar", t_scan, "cam", t_img, "odom", True, 0.1)
    assert c.deskewed and c.status == "motion compensation: tf (odom), deskew on" == comp.status
    err = pixel_error(c, in_cam)
    assert err.max() < 1.0, err.max()
    # The twist came from odometry poses 0.1 s apart ending at the scan stamp.
    poses = [t for kind, *rest in comp.extrinsics.calls if kind == "pose" for t in rest[1:]]
    assert t_scan - 100_000_000 in poses and t_scan in poses
    # Without compensation the same scan is metres of pixels off.
    off = ScanCompensator("off", FakeTf()).apply(pts, dt, "lidar", t_scan, "cam", t_img)
    assert off.status == "no motion compensation" and not off.deskewed
    assert np.median(pixel_error(off, in_cam)) > 5.0


def test_scan_level_compensation_without_point_times():
    t_img = T0_NS + 1_000_000_000
    pts, _, in_cam = skewed_sweep(t_img, t_img - 50_000_000, timed=False)
    c = ScanCompensator("tf", FakeTf()).apply(pts, None, "lidar", t_img - 50_000_000, "cam", t_img)
    assert not c.deskewed and c.status == "motion compensation: tf (odom), deskew off"
    assert pixel_error(c, in_cam).max() < 1.0
    # deskew switched off: the per-point times are ignored.
    pts2, dt2, _ = skewed_sweep(t_img, t_img, timed=True)
    c2 = ScanCompensator("tf", FakeTf()).apply(pts2, dt2, "lidar", t_img, "cam", t_img, deskew=False)
    assert not c2.deskewed and c2.points is pts2


def test_missing_odometry_falls_back_and_says_why():
    t_img = T0_NS + 1_000_000_000
    pts, dt, _ = skewed_sweep(t_img, t_img, timed=True)
    # No fixed frame at all: the scan at its stamp with the static extrinsics.
    c = ScanCompensator("tf", FakeTf(fixed="map")).apply(pts, dt, "lidar", t_img, "cam", t_img, "odom")
    assert c.status.startswith("no motion compensation (no odometry TF: no odom at")
    np.testing.assert_array_equal(c.T_cam_lidar, T_CAM_LIDAR)
    # The next frames do not wait for the missing frame again (a TF timeout each) until the retry time.
    comp = ScanCompensator("tf", FakeTf(fixed="map"))
    comp.apply(pts, dt, "lidar", t_img, "cam", t_img, "odom")
    n_calls = len(comp.extrinsics.calls)
    again = comp.apply(pts, dt, "lidar", t_img, "cam", t_img, "odom")
    assert len(comp.extrinsics.calls) == n_calls and again.status.startswith(
        "no motion compensation (no odometry"
    )
    comp._tf_retry_at = 0.0  # retry time reached
    comp.apply(pts, dt, "lidar", t_img, "cam", t_img, "odom")
    assert len(comp.extrinsics.calls) > n_calls
    # Odometry only from the scan stamp on (first frame): scan-level yes, twist no.
    c = ScanCompensator("tf", FakeTf(t_from_ns=t_img)).apply(pts, dt, "lidar", t_img, "cam", t_img)
    assert not c.deskewed and c.status.startswith("motion compensation: tf (odom), deskew off (no twist:")


def test_modes_and_configuration_errors():
    assert resolve_mode("auto", StaticExtrinsics()) == "off"
    assert resolve_mode("auto", FakeTf()) == "tf"
    with pytest.raises(DepthNodesError, match="extrinsics do not come from tf2"):
        ScanCompensator("tf", StaticExtrinsics())
    with pytest.raises(DepthNodesError, match="no LiDAR odometry"):
        ScanCompensator("lidar_odometry", StaticExtrinsics())
    with pytest.raises(DepthNodesError, match="must be one of"):
        ScanCompensator("imu", StaticExtrinsics())
    c = ScanCompensator("auto", StaticExtrinsics())
    assert c.status.startswith("no motion compensation")


class ExactOdometry:
    """Stands in for KISS-ICP: the true twist once two scans were seen."""

    def __init__(self) -> None:
        self.seen = []

    def update(self, points, stamp_ns):
        self.seen.append(stamp_ns)
        return SPEED if len(self.seen) > 1 else None


def test_lidar_odometry_mode_uses_the_odometry_twist():
    t_img = T0_NS + 1_000_000_000
    t_scan = t_img - 50_000_000
    pts, dt, in_cam = skewed_sweep(t_img, t_scan, timed=True)
    comp = ScanCompensator("lidar_odometry", StaticExtrinsics(), ExactOdometry())
    first = comp.apply(pts, dt, "lidar", t_scan, "cam", t_img)
    assert not first.deskewed and "waiting for a second scan" in first.status
    c = comp.apply(pts, dt, "lidar", t_scan, "cam", t_img)
    assert c.deskewed and c.status == "motion compensation: lidar odometry (kiss-icp), deskew on"
    assert pixel_error(c, in_cam).max() < 1.0


def test_kiss_icp_twist_on_a_synthetic_drive():
    """The real LiDAR odometry: KISS-ICP on three synthetic scans recovers the ego speed."""
    pytest.importorskip("kiss_icp", reason="kiss-icp not installed (pip install kiss-icp)")
    from depth_nodes.core.lidar_odometry import LidarOdometry
    from depth_nodes.data import synthetic_scene
    from depth_nodes.data.synthetic import render_frame

    odo = LidarOdometry()
    for i in range(3):
        f = render_frame(2, i, 414, 125)
        vel = odo.update(f.points, f.stamp_ns)
    speed = synthetic_scene.EgoPath.from_seed(2).speed_mps
    assert vel is not None and abs(vel.v_mps[0] - speed) < 0.3, (vel, speed)
    assert abs(vel.v_mps[1]) < 0.3 and np.linalg.norm(vel.w_radps) < 0.05
    assert odo.update(f.points, f.stamp_ns) is vel  # the same scan again is not registered twice
