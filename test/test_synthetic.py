"""Synthetic KITTI-like drives: determinism, sensor geometry, camera/LiDAR consistency, writer, CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from depth_nodes.cli import main as cli_main
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data import synthetic, synthetic_scene
from depth_nodes.data.kitti_depth import list_frames, read_depth_png
from depth_nodes.data.kitti_raw import RawDrive
from depth_nodes.data.synthetic import (
    BASE_STAMP_NS,
    DC_DIR,
    generate_drive,
    lidar_elevations_deg,
    lidar_visible_gt,
    raw_drive_dir,
    render_frame,
    synthetic_calib,
    write_drive,
)

SEED = 7


@pytest.fixture(scope="module")
def frames():
    return list(generate_drive(SEED, 4))


@pytest.fixture(scope="module")
def calib():
    return synthetic_calib()


def test_frame_contents(frames):
    f = frames[0]
    assert f.image.shape == (375, 1242, 3) and f.image.dtype == np.uint8
    assert f.depth_gt.shape == (375, 1242) and f.depth_gt.dtype == np.float32
    assert f.points.dtype == np.float32 and f.points.shape[1] == 4
    assert 90_000 < f.points.shape[0] < 140_000  # HDL-64E-like scan after dropouts
    assert f.rings.dtype == np.int16 and f.rings.shape == (f.points.shape[0],)
    assert set(np.unique(f.rings)) == set(range(64))
    rng_m = np.linalg.norm(f.points[:, :3], axis=1)
    assert rng_m.max() <= synthetic.LIDAR_MAX_RANGE_M + 0.1
    assert np.all((f.points[:, 3] >= 0) & (f.points[:, 3] <= 1))
    # Sky at the top of the image has no depth; the road at the bottom is near.
    assert np.all(f.depth_gt[0] == 0) or (f.depth_gt[0] == 0).mean() > 0.2
    assert np.all((f.depth_gt[-1] > 2) & (f.depth_gt[-1] < 8))
    assert np.all(f.depth_gt <= synthetic.CAMERA_FAR_M)
    # Textures: the image is not flat anywhere large.
    assert f.image.std() > 30


def test_rings_follow_the_elevation_table(frames):
    f = frames[1]
    elev = np.degrees(np.arctan2(f.points[:, 2], np.hypot(f.points[:, 0], f.points[:, 1])))
    err = elev - lidar_elevations_deg()[f.rings]
    # Range noise (1.5 cm) tilts near points slightly; far ones sit on the table.
    assert np.percentile(np.abs(err), 99) < 0.2
    table = lidar_elevations_deg()
    assert table[0] == pytest.approx(2.0) and table[-1] == pytest.approx(-24.8)
    assert np.all(np.diff(table) < 0)


def test_ego_motion_and_stamps(frames):
    stamps = [f.stamp_ns for f in frames]
    assert stamps[0] == BASE_STAMP_NS and np.all(np.diff(stamps) == 100_000_000)
    xs = np.array([f.T_world_velo[0, 3] for f in frames])
    assert np.all(np.diff(xs) > 0.75) and np.all(np.diff(xs) < 1.05)  # 7.5 .. 10.5 m/s at 10 Hz
    assert frames[0].T_world_velo[2, 3] == pytest.approx(1.73)


def test_deterministic_per_seed(frames):
    synthetic_scene.static_chunk.cache_clear()
    again = render_frame(SEED, 2)
    ref = frames[2]
    for name in ("image", "points", "rings", "depth_gt"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ref, name), err_msg=name)
    other = render_frame(SEED + 1, 2)
    assert not np.array_equal(other.depth_gt, ref.depth_gt)
    assert other.points.shape != ref.points.shape or not np.array_equal(other.points, ref.points)
    assert not np.array_equal(other.image, ref.image)


def test_moving_cars_move_between_frames(frames):
    # The lead car keeps a changing gap: the static world shifts by ego motion, cars do not.
    a, b = frames[0].depth_gt, frames[3].depth_gt
    assert not np.array_equal(a, b)


def _rates(frames, calib):
    cam, T = calib
    n_pix = n_agree = n_hidden = n_hidden_removed = n_vis = n_vis_removed = 0
    for f in frames:
        raw = scan_to_depth(f.points, T, cam, occlusion=None)
        d, gt = raw.depth, f.depth_gt
        m = d > 0
        agree = m & (np.abs(d - gt) <= 0.05 + 0.02 * gt)
        # Hidden from the camera: every GT pixel within 2 px is much nearer than the LiDAR return.
        hidden = m & (d > cv2.dilate(gt, np.ones((5, 5), np.uint8)) * 1.1 + 0.5)
        kept = scan_to_depth(f.points, T, cam).depth > 0
        n_pix += int(m.sum())
        n_agree += int(agree.sum())
        n_hidden += int(hidden.sum())
        n_hidden_removed += int((hidden & ~kept).sum())
        n_vis += int(agree.sum())
        n_vis_removed += int((agree & ~kept).sum())
    return n_pix, n_agree, n_hidden, n_hidden_removed, n_vis, n_vis_removed


def test_lidar_agrees_with_ground_truth_and_parallax_is_real(frames, calib):
    n_pix, n_agree, n_hidden, n_hidden_removed, n_vis, n_vis_removed = _rates(frames[::3], calib)
    agree = n_agree / n_pix
    removed_hidden = n_hidden_removed / max(n_hidden, 1)
    removed_visible = n_vis_removed / n_vis
    print(
        f"\nLiDAR pixels {n_pix}: agree with GT {agree:.3f}; parallax-hidden {n_hidden} "
        f"({n_hidden / n_pix:.4f}), occlusion filter removes {removed_hidden:.2f} of them and "
        f"{removed_visible:.4f} of the visible ones"
    )
    assert agree >= 0.95  # within noise + pixel quantisation (5 cm + 2 %)
    assert n_hidden >= 50  # the LiDAR (0.27 m behind, 0.08 m above the camera) sees behind edges
    assert removed_hidden >= 0.5  # most of them
    assert removed_visible <= 0.02


def test_lidar_dropouts_on_dark_surfaces(frames, calib):
    # Dark surfaces (tyres, glass, black paint) within 3-30 m get far fewer returns per pixel than bright ones.
    cam, T = calib
    dark_hits = dark_px = bright_hits = bright_px = 0
    for f in frames[::3]:
        d = scan_to_depth(f.points, T, cam, occlusion=None).depth
        lum = f.image.mean(axis=2)
        near = np.zeros(d.shape, bool)
        near[180:330] = True  # inside the LiDAR's vertical field of view
        near &= (f.depth_gt > 3) & (f.depth_gt < 30)
        dark, bright = near & (lum < 30), near & (lum > 80)
        dark_hits, dark_px = dark_hits + int((d[dark] > 0).sum()), dark_px + int(dark.sum())
        bright_hits, bright_px = bright_hits + int((d[bright] > 0).sum()), bright_px + int(bright.sum())
    assert dark_px > 10_000 and bright_px > 10_000
    assert dark_hits / dark_px < 0.8 * (bright_hits / bright_px)


def test_lidar_visible_gt_rule(frames, calib):
    cam, T = calib
    f = frames[0]
    gt = lidar_visible_gt(f.depth_gt, cam, T)
    assert np.all((gt == 0) | (gt == f.depth_gt))
    assert np.all(gt[f.depth_gt == 0] == 0)
    # Above the top ring (+2 deg, ~25 px above the horizon near 10 m+) nothing is kept.
    assert np.all(gt[:100] == 0) and (f.depth_gt[:100] > 0).any()
    assert (gt[200:] > 0).mean() > 0.95


def test_write_drive_layouts_and_manifest(tmp_path, calib, monkeypatch):
    out = write_drive(tmp_path / "d", seed=3, n_frames=2, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["seed"] == 3 and manifest["frames"] == 2
    drive = RawDrive(raw_drive_dir(out))
    assert drive.n_frames == 2
    np.testing.assert_array_equal(drive.image_stamps_ns, [BASE_STAMP_NS, BASE_STAMP_NS + 100_000_000])
    cam, T = calib
    np.testing.assert_allclose(drive.T_cam_velo, T, atol=1e-9)
    assert drive.camera().same_as(cam) or np.allclose(drive.camera().K, cam.K)
    f1 = render_frame(3, 1)
    np.testing.assert_array_equal(drive.scan(1), f1.points)
    np.testing.assert_array_equal(drive.rings(1), f1.rings)
    np.testing.assert_array_equal(drive.image(1), f1.image)
    assert drive.has_oxts and drive.oxts(1)[0] == pytest.approx(49.0, abs=0.1)
    dc = list_frames(out / DC_DIR)
    assert len(dc) == 2
    fr = dc[1].load()
    assert fr["image"].shape == (352, 1216, 3)
    x0, y0 = (1242 - 1216) // 2, 375 - 352
    np.testing.assert_allclose(fr["K"], cam.crop(x0, y0, 1216, 352).K)
    sparse = scan_to_depth(f1.points, T, cam).depth[y0:, x0 : x0 + 1216]
    np.testing.assert_allclose(fr["sparse"], sparse, atol=1 / 256)
    assert np.array_equal(fr["sparse"] > 0, sparse > 0)
    gt = lidar_visible_gt(f1.depth_gt, cam, T)[y0:, x0 : x0 + 1216]
    np.testing.assert_allclose(fr["groundtruth"], gt, atol=1 / 256)
    rings = synthetic.read_ring_png(dc[1].velodyne_raw)
    assert rings.dtype == np.int16 and np.array_equal(rings >= 0, fr["sparse"] > 0) and rings.max() <= 63
    # The ring of each pixel's return is consistent with the elevation table (rows grow downwards).
    ys, xs = np.nonzero(rings >= 0)
    assert np.corrcoef(ys, rings[ys, xs])[0, 1] > 0.9
    assert synthetic.read_ring_png(tmp_path / "velodyne_raw" / "x_velodyne_raw_0_image_02.png") is None

    # Reuse: a complete matching output is not rewritten.
    png = dc[0].velodyne_raw
    mtime = png.stat().st_mtime_ns
    assert write_drive(out, seed=3, n_frames=2, progress=False) == out
    assert png.stat().st_mtime_ns == mtime

    # An interrupted run leaves no complete manifest, and the next run regenerates.
    def boom(*args, **kwargs):
        yield render_frame(3, 0)
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "generate_drive", boom)
    with pytest.raises(KeyboardInterrupt):
        write_drive(out, seed=4, n_frames=2, progress=False)
    assert not (out / "manifest.json").exists()
    assert synthetic.read_manifest(out) is None
    monkeypatch.undo()
    write_drive(out, seed=3, n_frames=1, progress=False)
    assert synthetic.read_manifest(out)["frames"] == 1
    assert len(list_frames(out / DC_DIR)) == 1
    assert read_depth_png(list_frames(out / DC_DIR)[0].velodyne_raw).shape == (352, 1216)


def test_synth_cli(tmp_path, capsys):
    assert (
        cli_main(["synth", "-o", str(tmp_path / "c"), "--frames", "1", "--seed", "2", "--no-progress"]) == 0
    )
    assert "wrote 1 frames" in capsys.readouterr().out
    assert (tmp_path / "c" / "preview.png").stat().st_size > 10_000
    assert (
        cli_main(["synth", "-o", str(tmp_path / "c"), "--frames", "1", "--seed", "2", "--no-progress"]) == 0
    )
    assert "reused" in capsys.readouterr().out
    assert cli_main(["synth", "-o", str(tmp_path / "c"), "--frames", "0"]) == 1
    assert "--frames must be >= 1" in capsys.readouterr().err
    assert cli_main(["synth", "-o", str(tmp_path / "c"), "--drive", "mydrive"]) == 1
    assert "YYYY_MM_DD" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert cli_main(["synth", "-o", str(tmp_path / "file"), "--frames", "1"]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_region_culling_matches_brute_force():
    """The screen-space / azimuth culling never drops a hit: same buffers as testing every ray."""
    from depth_nodes.core.transforms import invert
    from depth_nodes.data.synthetic_raycast import CameraGrid, LidarGrid

    class FullCamera(CameraGrid):
        def regions(self, p):
            return [(slice(None), slice(None))]

    class FullLidar(LidarGrid):
        def regions(self, p):
            return [(slice(None), slice(None))]

    cam, T_cam_velo = synthetic_calib(1242, 375)
    ego = synthetic_scene.EgoPath.from_seed(5)
    for t in (0.0, 2.3):
        T_wv = ego.pose(t)
        prims = synthetic_scene.scene_at(5, t, T_wv[0, 3] - 40, T_wv[0, 3] + 160)
        small = cam.scaled(207, 63)  # a coarse pinhole grid keeps the brute force fast
        dirs = np.concatenate([small.pixel_rays(), np.ones((63, 207, 1), np.float32)], axis=-1)
        T_wc = T_wv @ invert(T_cam_velo)
        grids = []
        for cls in (CameraGrid, FullCamera):
            g = cls(T_wc, dirs, small.K, 150.0)
            g.cast(prims)
            grids.append(g)
        np.testing.assert_array_equal(grids[0].ids, grids[1].ids)
        # ... and culling does cull: the regions cover a small part of rays x primitives.
        g = grids[0]
        tested = sum(g.D[rs, cs].shape[0] * g.D[rs, cs].shape[1] for p in prims for rs, cs in g.regions(p))
        assert tested < 0.1 * len(prims) * g.t.size
        np.testing.assert_allclose(grids[0].t, grids[1].t, rtol=1e-3)  # BLAS rounding differs by shape
        el = np.deg2rad(lidar_elevations_deg())[:, None]
        az = np.arange(600)[None, :] * (2 * np.pi / 600)  # coarser azimuth steps, same geometry
        d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) + 0 * az], -1)
        a = LidarGrid(T_wv, d.astype(np.float32), el[:, 0], 120.0)
        b = FullLidar(T_wv, d.astype(np.float32), el[:, 0], 120.0)
        a.cast(prims)
        b.cast(prims)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.t, b.t, rtol=1e-3)
