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


def test_registered_estimator_plugs_into_a_mode(monkeypatch) -> None:
    """A monocular (or learned) estimator registered by name serves its mode; the node code is unchanged."""

    class ConstantMono:
        name, needs_image, needs_lidar = "const_mono", True, False

        def estimate(self, inputs: pl.FrameInputs) -> pl.Completion:
            h, w = inputs.camera.shape
            return pl.Completion(np.full((h, w), 7.0, np.float32), np.full((h, w), 0.5, np.float32))

    monkeypatch.setitem(pl.ESTIMATORS, "const_mono", ConstantMono)
    logs: list[str] = []
    sel = pl.EstimatorSelector("guided", "lidar_only", monocular="const_mono", log=logs.append)
    pipe = pl.FramePipeline(
        sel, pl.ModeMachine(1), pl.LidarCriteria(min_lidar_points=100), pl.OutputOptions()
    )
    res = pipe.process(scene.camera(), 1, "cam", scene.rgb_image(), None, None)  # no LiDAR: monocular
    assert res.mode == pl.MONOCULAR and res.published and res.estimator == "const_mono"
    assert np.all(res.depth == 7.0) and res.cloud_xyz.shape[1] == 3
    pl.EstimatorSelector("guided", "lidar_only", monocular="not_there", log=logs.append)
    assert any("'not_there' is not available" in line for line in logs)


# ------------------------------------------------------------------------------------------ frames
def test_guided_frame_keeps_lidar_depth_and_leaves_sky_empty() -> None:
    pipe, _ = make_pipeline(cloud_organized=True, cloud_decimation=1)
    cam = scene.camera()
    pts, sparse_true = scene.lidar_scan()
    sparse_expected = scene.projected_returns(pts, sparse_true)
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
    pts, sparse_true = scene.lidar_scan()
    sparse_expected = scene.projected_returns(pts, sparse_true)
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
    np.testing.assert_array_equal(rgb[0, 2], lut[0])  # far = dark blue end
    np.testing.assert_array_equal(rgb[0, 3], [0, 0, 0])  # no estimate = black
    np.testing.assert_array_equal(rgb[0, 4], lut[0])  # beyond the range saturates
    mid = pl.colorize_depth(np.array([[40.0]], np.float32), 0.0, 80.0)[0, 0].astype(int)
    assert np.abs(mid - lut[128]).max() <= 12  # half way: the middle of the map
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


# ------------------------------------------------------------------------------------------ node policy (ROS-free)
def test_parameter_validation_and_runtime_policy() -> None:
    from depth_nodes.ros import params

    p = params.from_values({})
    assert p.completer == "guided" and p.max_lidar_age_s == 0.15
    with pytest.raises(params.ParameterError, match="image_qos_reliability"):
        params.from_values({"image_qos_reliability": "sometimes"})
    with pytest.raises(params.ParameterError, match="cloud_decimation.*outside"):
        params.from_values({"cloud_decimation": 0})
    with pytest.raises(params.ParameterError, match="needs 4 numbers"):
        params.from_values({"lidar_to_camera_quat_xyzw": [0.0, 1.0]})
    with pytest.raises(params.ParameterError, match="unknown parameter"):
        params.from_values({"max_lidar_age": 0.1})
    new, why = params.check_change(p, {"cloud_decimation": 4, "colorize_max_depth_m": 50})
    assert why == "" and new.cloud_decimation == 4 and new.colorize_max_depth_m == 50.0
    new, why = params.check_change(p, {"backend": "torch"})
    assert new is None and "'backend' cannot change while the node runs" in why
    new, why = params.check_change(p, {"max_depth_m": 0.05})
    assert new is None and "max_depth_m" in why
    assert params.check_change(p, {"use_sim_time": True})[1] == ""  # not ours: left to rclpy


def test_rate_limited_log_counts_and_suppresses(monkeypatch) -> None:
    from depth_nodes.ros import diagnostics

    now = [100.0]
    monkeypatch.setattr(diagnostics.time, "monotonic", lambda: now[0])
    lines: list[str] = []
    log = diagnostics.RateLimitedLog(lines.append, period_s=5.0)
    assert log("a", "problem a") and not log("a", "problem a") and log("b", "problem b")
    for _ in range(10):
        log("a", "problem a")
    now[0] += 5.1
    assert log("a", "problem a")
    assert lines == ["problem a", "problem b", "problem a (11 more like this since the last report)"]
    assert log.counts == {"a": 13, "b": 1} and log.total == 14


def test_problem_keys_group_by_kind_not_by_value() -> None:
    from depth_nodes.ros.node_inputs import problem_key

    a = problem_key("image", ValueError("step 953 < width*bpp 960"))
    b = problem_key("image", ValueError("step 12 < width*bpp 30"))
    c = problem_key("image", ValueError("unknown encoding 'yuv'"))
    assert a == b != c


def test_static_extrinsics_from_parameters() -> None:
    from depth_nodes.ros.extrinsics import ExtrinsicsError, StaticExtrinsics, static_from_params

    T, src = static_from_params(scene.LIDAR_XYZ, scene.LIDAR_QUAT_XYZW, [0.0] * 16)
    np.testing.assert_allclose(T, scene.T_CAM_LIDAR, atol=1e-12)
    assert "quat" in src
    T2, src2 = static_from_params([0, 0, 0], [0, 0, 0, 1], scene.T_CAM_LIDAR.reshape(-1).tolist())
    np.testing.assert_allclose(T2, scene.T_CAM_LIDAR)
    assert "matrix" in src2
    with pytest.raises(DepthNodesError, match="quat"):
        static_from_params([0, 0, 0], [0, 0, 0, 0], [0.0] * 16)
    with pytest.raises(DepthNodesError, match="orthonormal"):
        static_from_params([0, 0, 0], [0, 0, 0, 1], (2 * np.eye(4)).reshape(-1).tolist())
    ext = StaticExtrinsics(T, src, lidar_frame="velo")
    np.testing.assert_array_equal(ext.lookup("cam", "velo", 0), T)
    with pytest.raises(ExtrinsicsError, match="not the configured lidar_frame"):
        ext.lookup("cam", "radar", 0)


def test_tf_extrinsics_glue_with_a_stub_tf2(monkeypatch) -> None:
    """tf2_ros is not installable here: a stub stands in to check lookup arguments and error mapping."""
    pytest.importorskip("rclpy")
    import sys
    import types
    from types import SimpleNamespace as NS

    from depth_nodes.ros import extrinsics

    class LookupException(Exception):
        pass

    calls = []
    q = scene.LIDAR_QUAT_XYZW
    tf = NS(
        transform=NS(translation=NS(x=0.05, y=-0.08, z=-0.27), rotation=NS(x=q[0], y=q[1], z=q[2], w=q[3]))
    )

    class Buffer:
        def lookup_transform(self, target, source, time, timeout):
            calls.append((target, source, time.nanoseconds, timeout.nanoseconds))
            if source == "missing":
                raise LookupException("frame does not exist")
            return tf

    stub = types.ModuleType("tf2_ros")
    stub.Buffer, stub.LookupException = Buffer, LookupException
    stub.ConnectivityException = stub.ExtrapolationException = LookupException
    stub.TransformListener = lambda buffer, node, spin_thread=True: None
    monkeypatch.setitem(sys.modules, "tf2_ros", stub)
    assert extrinsics.tf2_available()
    params = NS(extrinsics_source="auto", tf_timeout_s=0.05, lidar_frame="")
    ext = extrinsics.make_extrinsics(node=None, params=params)
    assert ext.source == "tf2"
    np.testing.assert_allclose(ext.lookup("cam", "lidar", 123), scene.T_CAM_LIDAR, atol=1e-9)
    assert calls == [("cam", "lidar", 123, 50_000_000)]  # camera <- LiDAR at the scan stamp
    with pytest.raises(extrinsics.ExtrinsicsError, match="no TF 'cam' <- 'missing'"):
        ext.lookup("cam", "missing", 5)
    monkeypatch.setitem(sys.modules, "tf2_ros", None)  # import fails again
    assert not extrinsics.tf2_available()
    with pytest.raises(DepthNodesError, match="tf2_ros is not importable"):
        extrinsics.make_extrinsics(None, NS(extrinsics_source="tf", tf_timeout_s=0.05, lidar_frame=""))
