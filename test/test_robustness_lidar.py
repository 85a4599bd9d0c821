"""LiDAR corruptions (Robo3D + range noise, spurious returns) and misalignment do what they say."""

import numpy as np
import pytest

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.eval.robustness.lidar_corruptions import (
    CLEAR_RANGE_M,
    LIDAR_CORRUPTIONS,
    SEVERITY_PARAMS,
    NeedsRingsError,
    corrupt_scan,
    ground_mask,
    kept_rings,
)
from depth_nodes.eval.robustness.misalignment import rotation_drift, time_offset_points, translation_drift


def _scan(n_rings=64, n_az=360, seed=0):
    """A ring scan over a ground plane 1.73 m below the sensor and a wall at 30 m (x forward)."""
    rng = np.random.default_rng(seed)
    el = np.deg2rad(np.linspace(2.0, -24.8, n_rings))
    az = np.deg2rad(np.linspace(-180, 180, n_az, endpoint=False))
    E, A = np.meshgrid(el, az, indexing="ij")
    d = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
    t_ground = np.where(d[:, 2] < -1e-3, -1.73 / np.minimum(d[:, 2], -1e-3), np.inf)
    t_wall = np.where(d[:, 0] > 1e-3, 30.0 / np.maximum(d[:, 0], 1e-3), np.inf)
    t = np.minimum(np.minimum(t_ground, t_wall), 100.0)
    pts = np.concatenate([d * t[:, None], rng.random((d.shape[0], 1))], 1).astype(np.float32)
    rings = np.repeat(np.arange(n_rings), n_az).astype(np.int16)
    return pts, rings


def _rng(s=0):
    return np.random.default_rng(s)


def test_beam_missing_keeps_exactly_the_stated_rings():
    pts, rings = _scan()
    for sev, keep in enumerate([48, 32, 24, 16, 8], 1):
        out, out_rings = corrupt_scan(pts, rings, "beam_missing", sev, _rng())
        assert set(np.unique(out_rings)) == set(kept_rings(64, keep))
        assert len(np.unique(out_rings)) == keep
        assert out.shape[0] == keep * 360  # every point of a kept ring survives
    assert np.array_equal(kept_rings(64, 32), np.arange(0, 64, 2))
    assert np.array_equal(kept_rings(64, 16), np.arange(0, 64, 4))
    assert np.array_equal(kept_rings(64, 8), np.arange(0, 64, 8))
    assert np.array_equal(kept_rings(32, 16), np.arange(0, 32, 4))  # a 32-ring sensor thins alike


def test_cross_sensor_thins_rings_and_points():
    pts, rings = _scan()
    out, out_rings = corrupt_scan(pts, rings, "cross_sensor", 2, _rng())  # 32 rings, every 2nd point
    assert len(np.unique(out_rings)) == 32 and out.shape[0] == 32 * 360 // 2


def test_ring_corruptions_refuse_ring_free_scans():
    pts, _ = _scan()
    for name in ("beam_missing", "cross_sensor"):
        with pytest.raises(NeedsRingsError, match="ring ids"):
            corrupt_scan(pts, None, name, 1, _rng())


def test_crosstalk_moves_the_stated_fraction():
    pts, rings = _scan()
    out, _ = corrupt_scan(pts, rings, "crosstalk", 3, _rng())
    moved = np.any(out != pts, axis=1)
    assert moved.sum() == int(0.008 * pts.shape[0])
    assert 2.5 < (out[moved, :3] - pts[moved, :3]).std() < 3.5  # N(0, 3 m)


def test_range_noise_std_is_along_the_ray():
    pts, rings = _scan()
    out, _ = corrupt_scan(pts, rings, "range_noise", 4, _rng())  # 0.2 m
    r0, r1 = np.linalg.norm(pts[:, :3], axis=1), np.linalg.norm(out[:, :3], axis=1)
    assert abs((r1 - r0).std() - 0.2) < 0.01
    cos = np.sum(pts[:, :3] * out[:, :3], 1) / (r0 * r1)
    assert np.all(cos > 1 - 1e-6)  # direction unchanged


def test_fog_drops_returns_beyond_the_attenuated_range_and_adds_near_scatter():
    pts, rings = _scan()
    beta = SEVERITY_PARAMS["fog"][3]  # 0.05 /m
    out, _ = corrupt_scan(pts, rings, "fog", 4, _rng())
    r = np.linalg.norm(pts[:, :3], axis=1)
    survivors = r * np.exp(beta * r) <= CLEAR_RANGE_M
    r_out = np.linalg.norm(out[:, :3], axis=1)
    kept_far = r_out[out[:, 3] > 0]  # real returns keep their intensity, scatter has 0
    assert kept_far.max() <= r[survivors].max() + 1e-4
    n_lost = (~survivors).sum()
    n_scatter = (out[:, 3] == 0).sum()
    assert 0.4 * n_lost < n_scatter < 0.6 * n_lost


def test_wet_ground_removes_far_ground_first():
    pts, rings = _scan()
    g = ground_mask(pts)
    wall = (np.abs(pts[:, 0] - 30) < 1e-3) & (pts[:, 2] > -1.4)
    assert g.sum() > 0.3 * pts.shape[0] and not g[wall].any()
    out, _ = corrupt_scan(pts, rings, "wet_ground", 3, _rng())
    assert out.shape[0] < pts.shape[0]
    r = np.linalg.norm(pts[:, :3], axis=1)
    # the wall is untouched; the nearest ground survives
    out_wall = (np.abs(out[:, 0] - 30) < 1e-3) & (out[:, 2] > -1.4)
    assert out_wall.sum() == wall.sum()
    assert np.linalg.norm(out[:, :3], axis=1).min() == pytest.approx(r[g].min(), abs=1e-4)


def test_incomplete_echo_drops_only_dark_returns_and_spurious_adds_near_ones():
    pts, rings = _scan()
    out, _ = corrupt_scan(pts, rings, "incomplete_echo", 5, _rng())  # all of the darkest 20 %
    assert out.shape[0] == pts.shape[0] - int(0.2 * pts.shape[0])
    assert out[:, 3].min() >= np.sort(pts[:, 3])[int(0.2 * pts.shape[0]) - 1]
    out2, rings2 = corrupt_scan(pts, rings, "spurious_returns", 5, _rng())
    extra = out2[pts.shape[0] :]
    assert extra.shape[0] == int(0.1 * pts.shape[0]) and rings2.shape[0] == out2.shape[0]


def test_motion_blur_translates_the_scan():
    pts, rings = _scan()
    out, _ = corrupt_scan(pts, rings, "motion_blur", 3, _rng())
    shift = (out[:, :3] - pts[:, :3]).mean(axis=0)
    assert 0 < np.linalg.norm(shift) < 0.08 * 5 and np.allclose(out[:, 3], pts[:, 3])


def test_every_lidar_corruption_runs_at_every_severity():
    pts, rings = _scan(n_az=90)
    for name in LIDAR_CORRUPTIONS:
        for sev in range(1, 6):
            out, r = corrupt_scan(pts, rings, name, sev, _rng(sev))
            assert out.ndim == 2 and out.shape[1] == 4 and (r is None or r.shape[0] == out.shape[0])


# ------------------------------------------------------------------------------------ misalignment
CAM = CameraModel(
    1216, 352, np.array([[721.5, 0, 608], [0, 721.5, 176], [0, 0, 1]]), np.zeros(5), "plumb_bob"
)
T_CAM_LIDAR = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)  # x fwd -> z


def _pixel(points, T):
    d = scan_to_depth(np.asarray(points, np.float32), T, CAM, occlusion=None).depth
    v, u = np.nonzero(d)
    return u[0], v[0]


def test_rotation_drift_moves_a_known_point_by_f_tan_angle():
    p = np.array([[20.0, 0.0, 0.0]])  # 20 m ahead, on the optical axis
    u0, v0 = _pixel(p, T_CAM_LIDAR)
    assert (u0, v0) == (608, 176)
    u1, v1 = _pixel(p, rotation_drift(T_CAM_LIDAR, 1.0, [0, 1, 0]))  # yaw about the camera's y
    assert abs(abs(u1 - u0) - 721.5 * np.tan(np.deg2rad(1.0))) <= 0.5 and v1 == v0
    u2, v2 = _pixel(p, rotation_drift(T_CAM_LIDAR, 2.0, [1, 0, 0]))  # pitch
    assert abs(abs(v2 - v0) - 721.5 * np.tan(np.deg2rad(2.0))) <= 0.5 and u2 == u0


def test_translation_drift_moves_a_point_by_f_t_over_z():
    p = np.array([[10.0, 0.0, 0.0]])
    u1, _ = _pixel(p, translation_drift(T_CAM_LIDAR, [0.2, 0, 0]))
    assert abs((u1 - 608) - 721.5 * 0.2 / 10) <= 0.5


def test_time_offset_with_ego_motion_shifts_the_scan_backwards():
    pts = np.array([[20.0, 0.0, 0.0, 1.0], [5.0, 3.0, 0.0, 1.0]], np.float32)
    T0, T1 = np.eye(4), np.eye(4)
    T1[0, 3] = 1.0  # 10 m/s forward over 0.1 s
    out = time_offset_points(pts, T0, T1, 0.1, 0.05)
    assert np.allclose(out[:, 0], pts[:, 0] - 0.5, atol=1e-5) and np.allclose(out[:, 1:3], pts[:, 1:3])
