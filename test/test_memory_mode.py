"""Mode ``lidar_memory`` in the ROS-free pipeline: modes with hysteresis, odometry vs still-only memory,
ageing out, confidence, diagnostics (exact scene of node_scene: a box 8 m ahead on a ground plane)."""

from __future__ import annotations

import node_scene as scene
import numpy as np
import pytest

from depth_nodes import pipeline as pl
from depth_nodes.core.transforms import invert
from depth_nodes.pipeline.lidar_memory import MemoryParams
from depth_nodes.pipeline.memory_mode import MemoryFallback

S = 1_000_000_000


def lidar_pose(x_m: float) -> np.ndarray:
    """The LiDAR driving along its x axis (forward): odometry ``T_fixed_lidar``."""
    T = np.eye(4)
    T[0, 3] = x_m
    return T


def cam_pose(x_m: float) -> np.ndarray:
    return lidar_pose(x_m) @ invert(scene.T_CAM_LIDAR)


def make(hysteresis: int = 3, **params) -> tuple[pl.FramePipeline, MemoryFallback]:
    selector = pl.EstimatorSelector("guided", "lidar_only", monocular="", log=lambda _: None)
    pipe = pl.FramePipeline(selector, pl.ModeMachine(hysteresis), pl.LidarCriteria(min_lidar_points=100))
    pipe.memory = MemoryFallback(MemoryParams(**params))
    return pipe, pipe.memory


def guided_frame(pipe, mem, t_ns: int, x_m: float, rgb=None):
    pts, _ = scene.lidar_scan(0)
    scan = pl.Scan(pts, t_ns, "lidar")
    res = pipe.process(scene.camera(), t_ns, "cam", scene.rgb_image() if rgb is None else rgb, scan,
                       scene.T_CAM_LIDAR)  # fmt: skip
    mem.remember(pts, t_ns, lidar_pose(x_m), scene.T_CAM_LIDAR, scene.rgb_image() if rgb is None else rgb)
    return res


def memory_frame(pipe, mem, t_ns: int, T_fixed_cam, rgb=None, why=""):
    rgb = scene.rgb_image() if rgb is None else rgb
    usable = mem.prepare(t_ns, T_fixed_cam, rgb, why, scene.T_CAM_LIDAR)
    return pipe.process(scene.camera(), t_ns, "cam", rgb, None, None, "no LiDAR scan", memory=usable)


def test_memory_carried_with_odometry_lands_on_the_moved_box_then_ages_out_then_guided_again():
    pipe, mem = make(hysteresis=3, max_age_s=1.0)
    for i in range(3):  # scene static, LiDAR still at x = 0 while scanning
        assert guided_frame(pipe, mem, i * S // 10, 0.0).mode == pl.GUIDED
    # The LiDAR drops; the robot drives 1 m towards the box: the box is 7 m ahead now.
    modes, published, machine = [], [], []
    for i in range(3, 8):
        t = i * S // 10
        res = memory_frame(pipe, mem, t, cam_pose(1.0))
        modes.append(res.mode)
        published.append(res.published)
        machine.append(pipe.modes.mode)
    # the mode machine switches after its hysteresis; the frames in between are served by the memory (the
    # better input than none) and reported as such
    assert machine == [pl.GUIDED, pl.GUIDED, pl.LIDAR_MEMORY, pl.LIDAR_MEMORY, pl.LIDAR_MEMORY]
    assert modes == [pl.LIDAR_MEMORY] * 5 and all(published)
    assert res.estimator == "lidar_memory" and "LiDAR memory carried with odometry" in pipe.modes.reason
    # the box's pixels have shifted (it is nearer: bigger); sample the box's centre
    centre = res.depth[40:60, 150:170]
    assert np.nanmedian(centre) == pytest.approx(scene.BOX["z"] - 1.0, abs=0.05)
    conf = res.confidence[np.isfinite(res.depth)]
    assert 0 < conf.max() < 1.0  # memory is never as certain as a fresh return
    values, _ = mem.diagnostics()
    assert float(values["memory_travelled_m"]) == pytest.approx(1.0, abs=1e-6)
    assert float(values["memory_age_s"]) == pytest.approx(0.5, abs=1e-6)
    assert float(values["memory_share_px"]) > 0.3 and values["memory_mono_share_px"] == "0.000"
    # aged out: the newest scan (t = 0.2 s) is more than 1 s old -> monocular after the hysteresis
    modes = [memory_frame(pipe, mem, t * S // 10, cam_pose(2.0)).mode for t in (13, 14, 15)]
    assert modes == [pl.LIDAR_MEMORY, pl.LIDAR_MEMORY, pl.MONOCULAR]
    assert "aged out" in pipe.modes.reason
    # the LiDAR returns: guided again after the hysteresis
    modes = [guided_frame(pipe, mem, t * S // 10, 2.0).mode for t in (16, 17, 18)]
    assert modes == [pl.MONOCULAR, pl.MONOCULAR, pl.GUIDED]
    # a short dropout: memory -> guided, every frame served by fresh LiDAR as soon as it is back
    for t in (19, 20, 21):
        memory_frame(pipe, mem, t * S // 10, cam_pose(2.0))
    assert pipe.modes.mode == pl.LIDAR_MEMORY
    res = [guided_frame(pipe, mem, t * S // 10, 2.0) for t in (22, 23, 24)]
    assert [r.mode for r in res] == [pl.GUIDED] * 3 and all(r.published for r in res)
    assert [r.estimator for r in res] == ["guided"] * 3 and pipe.modes.mode == pl.GUIDED


def test_no_odometry_memory_serves_only_while_the_image_says_still():
    pipe, mem = make(hysteresis=1)
    guided_frame(pipe, mem, 0, 0.0)
    mem.remember(*scene.lidar_scan(0)[:1], 1, None, scene.T_CAM_LIDAR, scene.rgb_image())  # no odometry pose
    res = memory_frame(pipe, mem, S // 2, None, why="no odometry TF: frame odom does not exist")
    assert res.mode == pl.LIDAR_MEMORY and res.published
    assert "robot still" in pipe.modes.reason
    box = scene.dense_depth() == scene.BOX["z"]
    assert np.nanmedian(res.depth[box]) == pytest.approx(scene.BOX["z"], abs=0.02)
    moved = np.roll(scene.rgb_image(), 12, axis=1)  # the picture changed: the robot turned
    res = memory_frame(pipe, mem, S // 2 + 1, None, moved, why="no odometry TF: frame odom does not exist")
    assert res.mode == pl.MONOCULAR and not res.published
    assert (
        "memory only while the robot is still" in pipe.modes.reason and "no odometry TF" in pipe.modes.reason
    )
    assert mem.diagnostics()[0]["memory_odometry"] == "none (memory only while still)"


def test_memory_with_odometry_needs_the_pose_at_the_image_time():
    pipe, mem = make(hysteresis=1)
    guided_frame(pipe, mem, 0, 0.0)
    res = memory_frame(pipe, mem, S // 10, None, why="no odometry TF: extrapolation into the future")
    assert res.mode == pl.MONOCULAR and "extrapolation into the future" in pipe.modes.reason


def test_memory_mode_off_keeps_the_old_behaviour():
    selector = pl.EstimatorSelector("guided", "lidar_only", monocular="", log=lambda _: None)
    pipe = pl.FramePipeline(selector, pl.ModeMachine(1), pl.LidarCriteria(min_lidar_points=100))
    res = pipe.process(scene.camera(), 0, "cam", scene.rgb_image(), None, None, "no LiDAR scan")
    assert res.mode == pl.MONOCULAR and res.reason.startswith("no LiDAR scan")
