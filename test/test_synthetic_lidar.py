"""Synthetic LiDAR scan patterns (spinning, raster, rosette) and the moving-sensor sweep."""

from __future__ import annotations

import json

import numpy as np
import pytest

from depth_nodes.cli import main as cli_main
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.data import synthetic_lidar, synthetic_scene
from depth_nodes.data.kitti_depth import list_frames
from depth_nodes.data.kitti_raw import RawDrive
from depth_nodes.data.synthetic import (
    DC_DIR,
    lidar_visible_gt,
    raw_drive_dir,
    read_ring_png,
    render_frame,
    synthetic_calib,
    write_drive,
)

SEED = 3
SMALL = (414, 125)  # a third of the KITTI image: the LiDAR is what these tests look at


def _az_el_deg(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    return np.degrees(np.arctan2(y, x)), np.degrees(np.arctan2(z, np.hypot(x, y)))


@pytest.mark.parametrize("name", synthetic_lidar.PATTERNS)
def test_pattern_geometry_and_timing(name):
    p = synthetic_lidar.scan_pattern(name, 5)
    n = p.dirs.shape[0]
    assert p.dirs.dtype == np.float32 and p.time_ns.shape == (n,) and p.time_ns.dtype == np.int64
    np.testing.assert_allclose(np.linalg.norm(p.dirs, axis=1), 1.0, atol=1e-6)
    assert np.all(np.abs(p.time_ns) <= synthetic_lidar.SWEEP_NS // 2)
    assert np.ptp(p.time_ns) > 0.95 * synthetic_lidar.SWEEP_NS  # the integration spans the whole 100 ms
    assert p.in_fov(p.dirs).all()
    # Every ray is in exactly one slice, fired at the slice's time.
    ids = np.concatenate([s.idx.reshape(-1) for s in p.slices])
    assert np.array_equal(np.sort(ids), np.arange(n))
    for s in p.slices:
        assert np.all(p.time_ns[s.idx] == s.time_ns) and np.all(np.diff(s.col_az) >= 0)
    az, el = _az_el_deg(p.dirs)
    if name.startswith("spinning"):
        rings = int(name[-2:])
        assert set(np.unique(p.rings)) == set(range(rings))
        np.testing.assert_allclose(el, synthetic_lidar.spinning_elevations_deg(rings)[p.rings], atol=1e-4)
        # Clockwise from above, forward at the stamp: left (+90 deg) a quarter turn earlier, right later.
        for az0, t_ms in ((0.0, 0.0), (90.0, -25.0), (-90.0, 25.0)):
            near = np.abs(az - az0) < 0.5
            assert np.all(np.abs(p.time_ns[near] / 1e6 - t_ms) < 1.5), (az0, t_ms)
        assert np.ptp(az) > 359
    else:
        assert p.rings is None
        assert np.all(np.abs(az) <= 61) and np.ptp(az) > 69
    if name == "raster":
        assert el.max() == pytest.approx(7.5, abs=0.05) and el.min() == pytest.approx(-17.5, abs=0.3)
        # No rings: the slow axis descends during each line (by one line spacing, 0.2 deg).
        spread = [np.ptp(el[s.idx]) for s in p.slices]
        assert min(spread) > 0.15 and max(spread) < 0.25
    if name == "rosette":
        assert np.hypot(az, el).max() <= synthetic_lidar.ROSETTE_CONE_DEG + 0.1
        other = synthetic_lidar.scan_pattern(name, 6)
        assert not np.allclose(other.dirs, p.dirs)  # non-repetitive: another frame, other directions


def test_unknown_pattern_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown LiDAR pattern 'solid'.*raster"):
        synthetic_lidar.scan_pattern("solid")


def test_sweep_culling_matches_brute_force(monkeypatch):
    """The conservative per-sweep culling never drops a hit, on a moving sensor."""
    ego = synthetic_scene.EgoPath.from_seed(5)
    prims = synthetic_scene.scene_at(5, 1.2, ego.pose(1.2)[0, 3] - 40, ego.pose(1.2)[0, 3] + 100)

    def pose_at(dt_ns):
        return ego.pose(1.2 + dt_ns * 1e-9)

    real_bounds = synthetic_lidar._prim_bounds
    for name in ("spinning32", "rosette"):
        pat = synthetic_lidar.scan_pattern(name, 12)
        a = synthetic_lidar.cast_sweep(pat, pose_at, prims, 120.0)

        def everything(*args, **kwargs):
            a0, a1, emin, emax, full, dmin = real_bounds(*args, **kwargs)
            return a0, a1, emin - 10, emax + 10, np.ones_like(full), dmin * 0

        monkeypatch.setattr(synthetic_lidar, "_prim_bounds", everything)
        b = synthetic_lidar.cast_sweep(pat, pose_at, prims, 120.0)
        monkeypatch.undo()
        np.testing.assert_array_equal(a.ids, b.ids, err_msg=name)
        np.testing.assert_allclose(a.t, b.t, rtol=1e-4)
        assert (a.ids >= 0).mean() > 0.05  # objects are hit


@pytest.fixture(scope="module")
def moving():
    return render_frame(SEED, 4, *SMALL, motion=True)


def test_motion_skew_is_the_ego_motion_of_each_point(moving):
    f = moving
    ego = synthetic_scene.EgoPath.from_seed(SEED)
    t0 = 0.4
    # Each measured point, placed with the pose at its own time, is the compensated point at the stamp.
    world = np.empty((f.points.shape[0], 3))
    for t in np.unique(f.point_time_ns):
        m = f.point_time_ns == t
        world[m] = transform_points(ego.pose(t0 + t * 1e-9), f.points_measured[m, :3].astype(np.float64))
    np.testing.assert_allclose(transform_points(invert(f.T_world_velo), world), f.points[:, :3], atol=2e-4)
    # ~9 m/s: points fired 50 ms off the stamp moved ~0.45 m; points fired at the stamp did not move.
    shift = np.linalg.norm(f.points[:, :3] - f.points_measured[:, :3], axis=1)
    late = np.abs(f.point_time_ns) > 45_000_000
    assert 0.35 < np.median(shift[late]) < 0.55
    assert np.median(shift[np.abs(f.point_time_ns) < 2_000_000]) < 0.03


def test_compensated_points_match_the_image_time_ground_truth(moving):
    cam, T = synthetic_calib(*SMALL)
    f = moving
    agree, err = {}, {}
    above_ground = f.points[:, 2] > -1.4  # the road hides a shift along itself; facades and cars do not
    for name, pts in (("compensated", f.points), ("measured", f.points_measured)):
        d = scan_to_depth(pts[above_ground], T, cam).depth
        m = (d > 0) & (f.depth_gt > 0)
        agree[name] = float((np.abs(d - f.depth_gt)[m] <= 0.05 + 0.02 * f.depth_gt[m]).mean())
        err[name] = float(np.median(np.abs(d - f.depth_gt)[m]))
    assert agree["compensated"] >= 0.95
    # In the camera's view (+-40 deg, +-11 ms of the sweep) the skew is a few centimetres.
    assert err["measured"] > 1.5 * err["compensated"], err


def test_motion_off_measures_from_the_stamp_pose():
    f = render_frame(SEED, 1, *SMALL, pattern="raster")
    assert f.rings is None and f.pattern == "raster"
    np.testing.assert_array_equal(f.points, f.points_measured)
    # An instantaneous scan: every point at the stamp (firing times would contradict the static pose).
    assert f.point_time_ns.shape == (f.points.shape[0],) and not f.point_time_ns.any()
    az, _ = _az_el_deg(f.points)
    assert np.all(np.abs(az) <= 60.5)


def test_write_drive_with_a_ring_free_pattern(tmp_path):
    out = write_drive(tmp_path / "r", seed=SEED, n_frames=1, progress=False, pattern="rosette", motion=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["lidar_pattern"] == "rosette" and manifest["motion"] is True
    drive = RawDrive(raw_drive_dir(out))
    f = render_frame(SEED, 0, pattern="rosette", motion=True)
    np.testing.assert_array_equal(drive.scan(0), f.points_measured)
    assert drive.rings(0) is None
    times = np.load(raw_drive_dir(out) / "velodyne_points" / "time_ns" / "0000000000.npy")
    np.testing.assert_array_equal(times, f.point_time_ns)
    fr = list_frames(out / DC_DIR)[0]
    assert read_ring_png(fr.velodyne_raw) is None  # no ring sidecar for a ring-free LiDAR
    cam, T = synthetic_calib()
    gt = lidar_visible_gt(f.depth_gt, cam, T, "rosette")
    full = lidar_visible_gt(f.depth_gt, cam, T)
    # The 70 deg cone reaches above the 64-ring field's top (+2 deg) but leaves the image corners out.
    assert np.all((gt == 0) | (gt == f.depth_gt))
    assert (gt[:100] > 0).sum() > 1000 and (full[:100] > 0).sum() == 0
    assert gt[-1, :20].max() == 0 and full[-1, :20].min() > 0
    loaded = fr.load()
    assert (loaded["sparse"] > 0).sum() > 5000


def test_synth_cli_pattern_option(tmp_path, capsys):
    args = ["synth", "-o", str(tmp_path / "c"), "--frames", "1", "--no-progress", "--no-preview"]
    assert cli_main([*args, "--lidar-pattern", "raster"]) == 0
    out = capsys.readouterr().out
    assert "LiDAR pattern raster" in out and "wrote 1 frames" in out
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["lidar_pattern"] == "raster"
    # Another pattern is another output: not reused.
    assert cli_main([*args, "--lidar-pattern", "spinning32"]) == 0
    assert "wrote 1 frames" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main([*args, "--lidar-pattern", "solid"])
    assert "invalid choice" in capsys.readouterr().err
