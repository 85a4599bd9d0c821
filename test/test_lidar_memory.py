"""LiDAR memory (ROS-free): carried scans against exact ray-cast geometry, the free-space test, bounds,
confidence ageing and the monocular fill scaled to the carried points."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes import completion
from depth_nodes.core.camera import CameraModel
from depth_nodes.errors import EmptyInputError
from depth_nodes.pipeline.lidar_memory import LidarMemory, MemoryParams, RangeImage
from depth_nodes.pipeline.memory_estimate import estimate_from_memory, nearest_value, project_carried

# LiDAR: x forward, y left, z up; camera optical: z forward, x right, y down; camera 0.3 m above the LiDAR.
R_CAM_LIDAR = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
T_CAM_LIDAR = np.eye(4)
T_CAM_LIDAR[:3, :3] = R_CAM_LIDAR
T_CAM_LIDAR[:3, 3] = [0.0, 0.3, 0.0]
WALL_X_M, GROUND_Z_M = 30.0, -1.7
CAMERA = CameraModel(160, 96, np.array([[80.0, 0, 80], [0, 80.0, 48], [0, 0, 1]]))


def pose(x_m: float, yaw_rad: float = 0.0) -> np.ndarray:
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[0, 3] = x_m
    return T


def raycast(T_fixed_lidar: np.ndarray, box: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A 0.2 x 0.4 deg LiDAR scan (LiDAR frame) of the wall x = WALL_X_M, the ground and an optional box
    (fixed-frame corners lo, hi): nearest hit per ray, exactly."""
    az, el = np.meshgrid(np.deg2rad(np.arange(-50, 50, 0.2)), np.deg2rad(np.arange(-20, 6, 0.4)))
    d_l = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    R, o = T_fixed_lidar[:3, :3], T_fixed_lidar[:3, 3]
    d = d_l @ R.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = np.where(d[:, 0] > 1e-9, (WALL_X_M - o[0]) / d[:, 0], np.inf)
        t_ground = np.where(d[:, 2] < -1e-9, (GROUND_Z_M - o[2]) / d[:, 2], np.inf)
        t = np.minimum(t_wall, t_ground)
        if box is not None:
            lo, hi = box
            t1, t2 = (lo - o) / d, (hi - o) / d
            near = np.nanmax(np.minimum(t1, t2), axis=1)
            far = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (far >= near) & (near > 0)
            t = np.where(hit, np.minimum(t, near), t)
    ok = np.isfinite(t) & (t < 200)
    return (d_l[ok] * t[ok, None]).astype(np.float32)


def exact_depth(T_fixed_cam: np.ndarray) -> np.ndarray:
    """The true depth image of the wall + ground seen by the camera at ``T_fixed_cam`` (no box)."""
    xy = CAMERA.pixel_rays().reshape(-1, 2)  # x/z, y/z per pixel
    rays = np.hstack([xy, np.ones((xy.shape[0], 1))])
    d = rays @ T_fixed_cam[:3, :3].T
    o = T_fixed_cam[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = np.where(d[:, 0] > 1e-9, (WALL_X_M - o[0]) / d[:, 0], np.inf)
        t_ground = np.where(d[:, 2] < -1e-9, (GROUND_Z_M - o[2]) / d[:, 2], np.inf)
    return np.minimum(t_wall, t_ground).reshape(CAMERA.shape).astype(np.float32)


def cam_pose(T_fixed_lidar: np.ndarray) -> np.ndarray:
    return T_fixed_lidar @ np.linalg.inv(T_CAM_LIDAR)


def test_carried_scans_land_on_the_exact_geometry_after_the_robot_moved_and_turned():
    mem = LidarMemory(MemoryParams(max_age_s=5.0))
    for i in range(3):  # 5 m/s, turning 2 deg per scan
        P = pose(0.5 * i, np.deg2rad(2.0 * i))
        mem.add(raycast(P), 100_000_000 * i, P)
    P_img = pose(4.0, np.deg2rad(8.0))  # the image 0.8 s after the last scan
    carried = mem.carry(cam_pose(P_img), 1_000_000_000, T_CAM_LIDAR)
    depth, conf = project_carried(carried, CAMERA, occlusion=None)
    truth = exact_depth(cam_pose(P_img))
    hit = depth > 0
    assert hit.mean() > 0.3
    # the nearest-pixel rounding moves a sample by <= half a pixel: on the grazing ground that is a few %
    rel = np.abs(depth[hit] - truth[hit]) / truth[hit]
    assert np.median(rel) < 0.01 and np.percentile(rel, 95) < 0.06
    assert carried.n_scans == 3 and carried.travelled_m == pytest.approx(np.hypot(4.0 - 1.0, 0.0), rel=0.05)
    assert np.all(conf[hit] > 0) and np.all(conf[~hit] == 0)


def test_a_moved_object_is_dropped_by_the_newest_scans_free_space_but_the_static_scene_is_kept():
    box = (np.array([10.0, -1.0, -1.7]), np.array([12.0, 1.0, 0.0]))  # a car 10 m ahead ...
    mem = LidarMemory()
    P0, P1 = pose(0.0), pose(0.5)
    old = raycast(P0, box)
    mem.add(old, 0, P0)
    mem.add(raycast(P1), 100_000_000, P1)  # ... gone in the newest scan: the LiDAR sees the wall there
    carried = mem.carry(cam_pose(P1), 150_000_000, T_CAM_LIDAR)
    on_box = (old[:, 0] > 9.9) & (old[:, 0] < 12.1) & (np.abs(old[:, 1]) < 1.01) & (old[:, 2] > -1.65)
    assert on_box.sum() > 100
    kept = mem._scans[0].keep
    assert kept is not None
    # every box point contradicted, but those within a few cm of the ground (the ground's own returns lie in
    # the same range-image cell, at the same range: no evidence either way)
    assert not kept[on_box & (old[:, 2] > GROUND_Z_M + 0.3)].any()
    assert kept[on_box].mean() < 0.1
    assert kept[~on_box].mean() > 0.99  # wall and ground stay (the shadow of the box has no evidence)
    assert carried.n_dropped_free == int((~kept).sum())
    # the carried image shows the wall, not the vanished car
    depth, _ = project_carried(carried, CAMERA, occlusion=None)
    where_box_was = depth[52:62, 72:88]  # the box front was at 9.5 m there
    assert np.count_nonzero(where_box_was) > 20 and np.all(where_box_was[where_box_was > 0] > 10.5)


def test_an_object_still_there_is_kept_and_no_return_is_no_evidence():
    box = (np.array([10.0, -1.0, -1.7]), np.array([12.0, 1.0, 0.0]))
    mem = LidarMemory()
    P0, P1 = pose(0.0), pose(0.5)
    old = raycast(P0, box)
    mem.add(old, 0, P0)
    newest = raycast(P1, box)
    mem.add(newest[newest[:, 1] > 0.0], 100_000_000, P1)  # the newest scan lost its right half (no returns)
    mem.carry(cam_pose(P1), 150_000_000, T_CAM_LIDAR)
    assert mem._scans[0].keep.mean() > 0.99


def test_range_image_keeps_the_nearest_return_of_a_cell():
    pts = np.array([[10.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 8.0, 0.0]], np.float32)
    img = RangeImage(pts, 0.25, 0.5)
    seen = img.seen_through(
        np.array([[4.0, 0, 0], [6.0, 0, 0], [0, 3.0, 0], [0, 0, -3.0]], np.float32), 0.0, 0.5
    )
    assert seen.tolist() == [True, False, True, False]  # (0, 0, -3): no return in that cell


def test_bounds_scan_count_points_age_and_reordered_scans():
    mem = LidarMemory(MemoryParams(max_scans=3, max_points=250, max_age_s=1.0))
    pts = np.ones((100, 3), np.float32)
    for i in range(4):
        mem.add(pts, i * 100_000_000, np.eye(4))
    assert len(mem) == 2 and mem.n_points == 200  # 300 points > 250: the oldest went too
    mem.add(pts, 50_000_000, np.eye(4))  # older than the newest: ignored
    assert mem.newest_stamp_ns() == 300_000_000
    mem.add(pts[:10], 1_350_000_000, np.eye(4))  # 1.05 s after the scan at 0.3 s
    assert len(mem) == 1
    nan_pts = pts.copy()
    nan_pts[0] = np.nan
    mem.add(nan_pts, 1_400_000_000, np.eye(4))
    assert mem.n_points == 10 + 99
    # not carried once older than max_age_s at the image time
    assert mem.carry(np.eye(4), 2_000_000_000).n_scans == 2
    assert mem.carry(np.eye(4), 2_500_000_000).empty


def test_confidence_halves_with_age_and_with_distance():
    p = MemoryParams(half_life_s=0.5, half_distance_m=4.0, max_age_s=10.0)
    mem = LidarMemory(p)
    mem.add(np.array([[10.0, 0, 0]], np.float32), 0, pose(0.0))
    mem.add(np.array([[10.0, 1, 0]], np.float32), 500_000_000, pose(2.0))
    c = mem.carry(cam_pose(pose(4.0)), 1_000_000_000, T_CAM_LIDAR)
    # scan 0: 1 s, 4 m -> 0.25 * 0.5; scan 1: 0.5 s, 2 m -> 0.5 * 0.7071
    assert c.confidence.tolist() == pytest.approx([0.125, 0.5 * 2**-0.5], rel=1e-5)
    assert c.newest_age_s == pytest.approx(0.5) and c.travelled_m == pytest.approx(2.0)


def test_mono_fill_is_scaled_to_this_frames_memory_points():
    P = pose(0.0)
    mem = LidarMemory()
    scan = raycast(P)
    mem.add(scan[scan[:, 1] > 0], 0, P)  # memory covers the left half of the view only
    carried = mem.carry(cam_pose(pose(0.5)), 100_000_000, T_CAM_LIDAR)
    truth = exact_depth(cam_pose(pose(0.5)))
    pred = truth / 2.5  # a metric net whose scale is off by 2.5x
    comp = completion.create("ip_basic")
    est = estimate_from_memory(
        carried, CAMERA, comp, None, max_depth_m=80.0, mono_pred=pred, mono_kind="metric"
    )
    assert est.mono_fit is not None and est.mono_fit.scale == pytest.approx(2.5, rel=0.02)
    right = np.zeros(CAMERA.shape, bool)
    right[:, 110:] = True
    filled = right & np.isfinite(est.completion.depth) & (truth < 80)
    assert filled.mean() > 0.2 and est.share_mono > 0.1 and est.share_memory > 0.3
    rel = np.abs(est.completion.depth[filled] - truth[filled]) / truth[filled]
    assert np.median(rel) < 0.03
    conf = est.completion.confidence
    assert np.all(conf[np.isfinite(est.completion.depth)] > 0) and np.all(conf <= 1)
    # memory only: the right part stays NaN
    alone = estimate_from_memory(carried, CAMERA, comp, None, max_depth_m=80.0)
    assert alone.share_mono == 0 and np.isnan(alone.completion.depth[:, 150:]).all()


def test_no_memory_in_view_is_a_clear_error():
    mem = LidarMemory()
    mem.add(np.array([[-10.0, 0, 0]], np.float32), 0, np.eye(4))  # behind the camera
    carried = mem.carry(cam_pose(np.eye(4)), 10_000_000, T_CAM_LIDAR)
    with pytest.raises(EmptyInputError, match="no carried return"):
        estimate_from_memory(carried, CAMERA, completion.create("ip_basic"), None)


def test_nearest_value_follows_the_nearest_return():
    sparse = np.zeros((4, 6), np.float32)
    sparse[0, 0], sparse[3, 5] = 1.0, 2.0
    vals = np.zeros_like(sparse)
    vals[0, 0], vals[3, 5] = 0.2, 0.9
    out = nearest_value(sparse, vals)
    assert out[0, 1] == pytest.approx(0.2) and out[3, 4] == pytest.approx(0.9)


def test_demo_default_drive_stands_still_while_the_lidar_is_withheld():
    from depth_nodes.data.synthetic import BASE_STAMP_NS, FRAME_PERIOD_NS, ego_path
    from depth_nodes.demo import DEFAULT_FRAMES, DROPOUT_FRAMES, dropout_of

    stop, skip = dropout_of(DEFAULT_FRAMES)
    withheld = [i for i in range(DEFAULT_FRAMES) if skip(BASE_STAMP_NS + i * FRAME_PERIOD_NS)]
    assert withheld == list(range(DROPOUT_FRAMES[0], DROPOUT_FRAMES[1] + 1))
    ego, still = ego_path(0, stop_s=stop), ego_path(0)
    # standing still from one frame before the first withheld scan to one after the last
    poses = [ego.pose(i * 0.1)[:3, 3] for i in range(DROPOUT_FRAMES[0] - 1, DROPOUT_FRAMES[1] + 2)]
    assert np.ptp(np.asarray(poses), axis=0).max() < 1e-9
    assert ego.pose(0.5)[0, 3] == pytest.approx(still.pose(0.5)[0, 3])  # unchanged before the stop
    assert ego.pose(2.0)[0, 3] == pytest.approx(still.pose(2.0 - (stop[1] - stop[0]))[0, 3])
    assert dropout_of(12) == (None, None) and dropout_of(DEFAULT_FRAMES, enabled=False) == (None, None)


def test_no_memory_depth_where_something_moved_while_it_was_recorded():
    box = (np.array([10.0, -1.0, -1.7]), np.array([12.0, 1.0, 0.0]))
    mem = LidarMemory()
    P0, P1 = pose(0.0), pose(0.5)
    mem.add(raycast(P0, box), 0, P0)
    mem.add(raycast(P1), 100_000_000, P1)  # the box drove off between the two scans
    carried = mem.carry(cam_pose(pose(1.0)), 200_000_000, T_CAM_LIDAR)
    comp = completion.create("ip_basic")
    kept = estimate_from_memory(carried, CAMERA, comp, None, max_depth_m=80.0, exclude_moving=False)
    est = estimate_from_memory(carried, CAMERA, comp, None, max_depth_m=80.0)
    assert est.moving_mask is not None and kept.moving_mask is None
    where = est.moving_mask
    assert 0.01 < where.mean() < 0.3  # around the box's old place only
    assert (
        np.isnan(est.completion.depth[where]).all() and np.isfinite(kept.completion.depth[where]).mean() > 0.5
    )
    assert np.all(est.completion.confidence[where] == 0)
    outside = ~where & np.isfinite(kept.completion.depth)
    np.testing.assert_array_equal(est.completion.depth[outside], kept.completion.depth[outside])
