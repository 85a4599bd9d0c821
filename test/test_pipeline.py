"""The ROS-free frame pipeline: pairing, mailbox, mode machine, estimator selection, outputs."""

from __future__ import annotations

import threading

import node_scene as scene
import numpy as np
import pytest

from depth_nodes import pipeline as pl
from depth_nodes.errors import DepthNodesError


def make_pipeline(hysteresis: int = 2, **opts) -> tuple[pl.FramePipeline, list[str]]:
    logs: list[str] = []
    selector = pl.EstimatorSelector("guided", "lidar_only", log=logs.append)
    modes = pl.ModeMachine(hysteresis, on_transition=lambda t: logs.append(f"{t.old}->{t.new}"))
    pipe = pl.FramePipeline(selector, modes, pl.LidarCriteria(min_lidar_points=100), pl.OutputOptions(**opts))
    return pipe, logs


def scan_at(stamp_ns: int, seed: int = 0) -> pl.Scan:
    pts, _ = scene.lidar_scan(seed)
    return pl.Scan(pts, stamp_ns, "lidar")


# ------------------------------------------------------------------------------------------ sync
def test_scan_cache_pairs_nearest_stamp_within_age() -> None:
    cache = pl.ScanCache(size=3)
    for t in (0, 100_000_000, 200_000_000):
        cache.add(pl.Scan(np.zeros((1, 3), np.float32), t, "l"))
    assert cache.nearest(140_000_000, 0.1).stamp_ns == 100_000_000
    assert cache.nearest(260_000_000, 0.1).stamp_ns == 200_000_000
    assert cache.nearest(400_000_000, 0.1) is None  # 0.2 s from the newest
    # A mis-stamped late arrival does not hide the good scan.
    cache.add(pl.Scan(np.zeros((1, 3), np.float32), 10**12, "l"))
    assert cache.nearest(210_000_000, 0.1).stamp_ns == 200_000_000
    assert cache.nearest(0, 0.05) is None  # stamp 0 fell out of the 3-slot cache


def test_mailbox_keeps_newest_and_counts_drops() -> None:
    box = pl.Mailbox()
    assert box.put(1) and not box.put(2) and not box.put(3)
    assert box.get(0) == 3 and box.dropped == 2 and box.received == 3
    assert box.get(0.01) is None
    got = []
    t = threading.Thread(target=lambda: got.append(box.get(5.0)))
    t.start()
    box.put("x")
    t.join(5.0)
    assert got == ["x"]
    box.close()
    assert box.get(5.0) is None  # closed: returns at once


# ------------------------------------------------------------------------------------------ modes
def test_mode_machine_hysteresis_and_transitions_logged_once() -> None:
    seen = []
    m = pl.ModeMachine(3, on_transition=seen.append)
    assert m.propose(pl.GUIDED, "ok") == pl.GUIDED  # start-up switch is immediate
    assert m.propose(pl.MONOCULAR, "lidar stale") == pl.GUIDED
    assert m.propose(pl.MONOCULAR, "lidar stale") == pl.GUIDED
    assert m.propose(pl.GUIDED, "ok") == pl.GUIDED  # a good frame resets the count
    for _ in range(2):
        assert m.propose(pl.MONOCULAR, "lidar stale") == pl.GUIDED
    assert m.propose(pl.MONOCULAR, "lidar stale") == pl.MONOCULAR
    assert m.propose(pl.MONOCULAR, "lidar stale") == pl.MONOCULAR
    assert [(t.old, t.new) for t in seen] == [("none", "guided"), ("guided", "monocular")]
    with pytest.raises(ValueError, match="unknown mode"):
        m.propose("sonar", "")
    with pytest.raises(ValueError, match="hysteresis"):
        pl.ModeMachine(0)


def test_selector_falls_back_and_explains_monocular() -> None:
    logs: list[str] = []
    sel = pl.EstimatorSelector("no_such_completer", "ip_basic", log=logs.append)
    assert sel.active_names[pl.GUIDED] == pl.FALLBACK_COMPLETER
    assert any("no_such_completer" in line and "ip_basic" in line for line in logs)
    assert sel.for_mode(pl.MONOCULAR) is None and "monocular" in sel.why_not(pl.MONOCULAR)
    assert sel.for_mode(pl.LIDAR_ONLY).needs_image is False


# ------------------------------------------------------------------------------------------ frames
def test_guided_frame_keeps_lidar_depth_and_leaves_sky_empty() -> None:
    pipe, _ = make_pipeline(cloud_organized=True, cloud_decimation=1)
    cam = scene.camera()
    _, sparse_expected = scene.lidar_scan()
    res = pipe.process(cam, 123, "cam", scene.rgb_image(), scan_at(123), scene.T_CAM_LIDAR)
    assert res.published and res.mode == pl.GUIDED, res.reason
    hit = sparse_expected > 0
    np.testing.assert_allclose(res.depth[hit], sparse_expected[hit], atol=0.01)
    assert np.all(res.confidence[hit] == 1.0)
    assert np.all(np.isnan(res.depth[:30]))  # above the box top and horizon: no LiDAR, no estimate
    assert np.all(res.confidence[:30] == 0.0)
    # Completed ground between LiDAR rows is close to the truth (plane, ~7-60 m).
    gt = scene.dense_depth()
    both = np.isfinite(gt) & np.isfinite(res.depth)
    rel = np.abs(res.depth[both] - gt[both]) / gt[both]
    assert np.median(rel) < 0.02
    assert res.colorized.shape == (scene.HEIGHT, scene.WIDTH, 3) and res.colorized.dtype == np.uint8
    assert np.all(res.colorized[:30] == 0)
    assert res.cloud_xyz.shape == (scene.HEIGHT, scene.WIDTH, 3) and res.cloud_organized
    np.testing.assert_allclose(res.cloud_xyz[..., 2][both], res.depth[both], rtol=1e-6)
    np.testing.assert_array_equal(res.cloud_rgb, scene.rgb_image())
    assert {"project", "estimate", "colorize", "cloud"} <= res.timings_ms.keys()


def test_decimated_cloud_holds_valid_points_only() -> None:
    pipe, _ = make_pipeline(cloud_organized=False, cloud_decimation=4, colorized=False)
    cam = scene.camera()
    res = pipe.process(cam, 1, "cam", scene.rgb_image(), scan_at(1), scene.T_CAM_LIDAR)
    n_expected = int(np.count_nonzero(np.isfinite(res.depth[::4, ::4])))
    assert res.cloud_xyz.shape == (n_expected, 3) and np.isfinite(res.cloud_xyz).all()
    assert res.cloud_rgb.shape == (n_expected, 3)
    assert res.colorized is None


def test_lidar_stale_moves_to_monocular_after_hysteresis_and_back() -> None:
    pipe, logs = make_pipeline(hysteresis=2)
    cam, rgb = scene.camera(), scene.rgb_image()
    assert pipe.process(cam, 0, "c", rgb, scan_at(0), scene.T_CAM_LIDAR).published
    first = pipe.process(cam, 1, "c", rgb, None, None)  # still guided (hysteresis) but cannot run
    assert first.mode == pl.GUIDED and not first.published and "LiDAR" in first.reason
    second = pipe.process(cam, 2, "c", rgb, None, None)
    assert second.mode == pl.MONOCULAR and not second.published
    assert "monocular" in second.reason
    pipe.process(cam, 3, "c", rgb, scan_at(3), scene.T_CAM_LIDAR)
    back = pipe.process(cam, 4, "c", rgb, scan_at(4), scene.T_CAM_LIDAR)
    assert back.mode == pl.GUIDED and back.published
    assert logs.count("guided->monocular") == 1 and logs.count("monocular->guided") == 1


def test_too_few_returns_count_as_degraded_lidar() -> None:
    pipe, _ = make_pipeline(hysteresis=1)
    pipe.criteria = pl.LidarCriteria(min_lidar_points=10**6)
    res = pipe.process(scene.camera(), 0, "c", scene.rgb_image(), scan_at(0), scene.T_CAM_LIDAR)
    assert res.mode == pl.MONOCULAR and "degraded" in res.reason


def test_lidar_driven_frame_without_camera_is_lidar_only() -> None:
    pipe, _ = make_pipeline(hysteresis=1)
    _, sparse_expected = scene.lidar_scan()
    res = pipe.process(scene.camera(), 5, "c", None, scan_at(5), scene.T_CAM_LIDAR)
    assert res.mode == pl.LIDAR_ONLY and res.published
    hit = sparse_expected > 0
    np.testing.assert_allclose(res.depth[hit], sparse_expected[hit], atol=0.01)
    assert res.cloud_rgb is not None  # coloured by depth when there is no image
    res = pipe.process(scene.camera(), 6, "c", None, None, None)
    assert res.mode == pl.NONE and not res.published and "camera stale" in res.reason


def test_colorize_uses_fixed_range() -> None:
    depth = np.array([[0.0, 40.0, 80.0, np.nan, 200.0]], np.float32)
    rgb = pl.colorize_depth(depth, 0.0, 80.0)
    lut = pl.colormap_lut("turbo")
    np.testing.assert_array_equal(rgb[0, 0], lut[255])  # near = red end
    np.testing.assert_array_equal(rgb[0, 2], lut[0])
    np.testing.assert_array_equal(rgb[0, 3], [0, 0, 0])  # no estimate = black
    np.testing.assert_array_equal(rgb[0, 4], lut[0])  # beyond the range saturates
    # Same depth, same colour, whatever else is in the frame.
    other = pl.colorize_depth(np.array([[40.0, 5.0]], np.float32), 0.0, 80.0)
    np.testing.assert_array_equal(other[0, 0], rgb[0, 1])
    with pytest.raises(DepthNodesError, match="max > min"):
        pl.colorize_depth(depth, 10.0, 10.0)
    with pytest.raises(DepthNodesError, match="colour map"):
        pl.colormap_lut("rainbow_unicorn")


def test_rolling_stats_and_rate_meter() -> None:
    s = pl.RollingStats(100)
    assert np.isnan(s.percentiles()[50])
    for v in range(1, 101):
        s.add(v)
    p = s.percentiles()
    assert p[50] == pytest.approx(50.5) and p[99] == pytest.approx(99.01)
    r = pl.RateMeter(window_s=10.0)
    for i in range(11):
        r.tick(100.0 + 0.1 * i)
    assert r.rate_hz(now=101.0) == pytest.approx(10.0)
    assert r.age_s(now=101.5) == pytest.approx(0.5)
