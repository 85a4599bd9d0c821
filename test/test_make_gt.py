"""make-gt: accumulated ground truth on a synthetic drive (exact depth known), moving objects, readers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.data.gt_sources import Drive, DriveFrame, kiss_icp_poses, open_drive, rings_from_scan_order
from depth_nodes.data.kitti_depth import crop_bottom_centre, list_frames
from depth_nodes.data.make_gt import GTParams, frame_ground_truth, make_gt, parse_frames
from depth_nodes.data.synthetic import generate_drive, lidar_elevations_deg, synthetic_calib
from depth_nodes.errors import DataFormatError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N_FRAMES, K = 5, 2


@pytest.fixture(scope="module")
def synth():
    pytest.importorskip("kiss_icp", reason="kiss-icp (LiDAR odometry) is not installed")
    camera, T = synthetic_calib()
    frames = list(generate_drive(3, N_FRAMES))
    return camera, T, frames


def _drive(camera, T, scans, frames) -> Drive:
    return Drive("2011_09_26_drive_0003_sync", [
        DriveFrame(f.index, f.image, s, camera, T, f.rings) for f, s in zip(frames, scans, strict=True)
    ], crop=(1216, 352))  # fmt: skip


def footprint_error(est: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Distance of ``est`` to the exact depth range over each pixel's footprint (its centre and the
    midpoints to its 4 neighbours). A LiDAR point lands anywhere inside a pixel: on the road at 30 m one
    row spans ~0.7 m of depth, so even the current scan's own returns miss the pixel-centre depth by
    12 cm at their 95th percentile, while they fall inside the footprint range to 2 cm."""
    pad = np.pad(true, 1, mode="edge")
    h, w = true.shape
    mids = [
        (true + pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]) / 2
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))
    ]
    stack = np.stack([true, *mids])
    return np.maximum(0.0, np.maximum(stack.min(0) - est, est - stack.max(0)))


def test_make_gt_recovers_the_exact_dense_depth_where_scans_cover_it(synth, tmp_path) -> None:
    camera, T, frames = synth
    drive = _drive(camera, T, [f.points[:, :3] for f in frames], frames)
    make_gt(drive, tmp_path, GTParams(neighbours=2), frames=[K], progress=False)  # odometry: KISS-ICP
    (frame,) = list_frames(tmp_path)
    d = frame.load()
    x0, y0 = crop_bottom_centre(camera.shape)
    true = frames[K].depth_gt[y0 : y0 + 352, x0 : x0 + 1216]
    gt, sparse = d["groundtruth"], d["sparse"]
    m = gt > 0
    err = footprint_error(gt, true)[m]
    assert np.mean(err < 0.05) >= 0.95, f"only {np.mean(err < 0.05):.3f} of GT pixels within 5 cm"
    # Accumulation densifies: several times the single scan's pixels, and the scan's own pixels kept.
    assert m.sum() >= 4 * np.count_nonzero(sparse)
    both = (sparse > 0) & m  # the scan's own returns are the GT at their pixels (a few more turn out hidden)
    assert np.all(gt[both] == sparse[both]) and both.sum() >= 0.98 * np.count_nonzero(sparse)
    assert np.allclose(d["K"], camera.crop(x0, y0, 1216, 352).K)


def _with_moving_patch(scan: np.ndarray, x_m: float) -> tuple[np.ndarray, np.ndarray]:
    """``scan`` with a 1.8 x 1.4 m plate facing the LiDAR at ``x_m`` ahead (what it hides removed)."""
    el = np.radians(lidar_elevations_deg())[:, None]
    az = np.linspace(-np.pi, np.pi, 2118, endpoint=False)[None, :]
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) + 0 * az], -1).reshape(
        -1, 3
    )
    dirs = dirs[dirs[:, 0] > 0.1]
    hit = dirs * (x_m / dirs[:, 0])[:, None]
    on = (np.abs(hit[:, 1]) <= 0.9) & (hit[:, 2] >= -1.2) & (hit[:, 2] <= 0.2)
    plate = hit[on].astype(np.float32)
    ang = lambda p: (np.arctan2(p[:, 1], p[:, 0]), np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])))  # noqa: E731
    az, el = ang(scan)
    paz, pel = ang(plate)
    behind = (
        (az >= paz.min()) & (az <= paz.max()) & (el >= pel.min()) & (el <= pel.max()) & (scan[:, 0] > x_m)
    )
    return np.vstack([scan[~behind], plate]), plate


def test_make_gt_removes_a_moving_object(synth) -> None:
    camera, T, frames = synth
    scans, plates = [], []
    for f in frames:  # a plate approaching at 15 m/s relative: 1.5 m per frame
        s, p = _with_moving_patch(f.points[:, :3].copy(), 14.0 + 1.5 * (f.index - K))
        scans.append(s)
        plates.append(p)
    drive = _drive(camera, T, scans, frames)
    poses = kiss_icp_poses(scans)
    true_poses = np.stack([f.T_world_velo for f in frames])
    own = np.zeros(camera.shape, bool)  # pixels the plate covers in the current frame (dilated)
    idx, _ = _project(plates[K], T, camera)
    own.ravel()[idx] = True
    own = np.asarray(__import__("cv2").dilate(own.astype(np.uint8), np.ones((9, 9), np.uint8)), bool)
    ghosts = {}
    for filt in (True, False):
        _, gt, _ = frame_ground_truth(drive, poses, K, GTParams(neighbours=2), filter_motion=filt)
        n_ghost = n_seen = 0
        for j in range(N_FRAMES):
            if j == K:
                continue
            idx, z = _project(plates[j], T @ invert(true_poses[K]) @ true_poses[j], camera)
            sel = ~own.ravel()[idx]
            g = gt.ravel()[idx[sel]]
            n_seen += sel.sum()
            n_ghost += np.count_nonzero(np.abs(g - z[sel]) < 0.3)
        ghosts[filt] = n_ghost / max(1, n_seen)
    assert ghosts[False] > 0.3, f"the test scene has no ghost to remove ({ghosts[False]:.2f})"
    assert ghosts[True] < 0.02, f"{ghosts[True]:.3f} of the moving plate's old positions stay in the GT"


def _project(points: np.ndarray, T: np.ndarray, camera) -> tuple[np.ndarray, np.ndarray]:
    from depth_nodes.core.projection import project_points

    return project_points(transform_points(T, points), camera)


def test_rings_from_scan_order_recovers_kitti_laser_runs() -> None:
    rng = np.random.default_rng(0)
    runs = []
    for ring in range(64):  # each laser sweeps azimuth 0 -> 2 pi, stored one after the other
        az = np.sort(rng.uniform(0, 2 * np.pi, 500))
        el = np.radians(2.0 - 0.4 * ring)
        runs.append(
            np.stack([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.full(500, np.sin(el))], 1) * 20
        )
    pts = np.vstack(runs).astype(np.float32)
    assert np.array_equal(rings_from_scan_order(pts), np.repeat(np.arange(64), 500))
    assert rings_from_scan_order(pts[rng.permutation(pts.shape[0])]) is None  # not in scan order


def test_bad_inputs_raise_clear_errors(tmp_path) -> None:
    with pytest.raises(DataFormatError, match="neither a KITTI raw drive"):
        open_drive(tmp_path)
    with pytest.raises(DataFormatError, match="not found"):
        open_drive(tmp_path / "missing")
    assert parse_frames("0-2,5", 10) == [0, 1, 2, 5]
    with pytest.raises(DataFormatError, match="outside"):
        parse_frames("3-12", 10)
    with pytest.raises(DataFormatError, match="expected"):
        parse_frames("a-b", 10)


@pytest.mark.skipif(not (SHARED / "pandaset_seq002").is_dir(), reason="../shared/data/pandaset_seq002 absent")
def test_pandaset_reader_rings_match_the_beam_table_while_moving() -> None:
    from depth_nodes.data.pandaset import PandaSetDrive

    ps = PandaSetDrive(SHARED / "pandaset_seq002")
    assert ps.n_frames == 56 and ps.camera().shape == (1080, 1920)
    rings = ps.rings(50)  # the car moves at ~4.5 m/s here
    assert np.mean(rings >= 0) > 0.99 and np.unique(rings[rings >= 0]).size >= 60
    assert ps.scan_gt(5) is not None and ps.scan_gt(6) is None


def test_cli_reports_a_bad_drive_directory(tmp_path, capsys) -> None:
    from depth_nodes.cli import main

    assert main(["make-gt", str(tmp_path), "-o", str(tmp_path / "out")]) == 1
    assert "neither a KITTI raw drive" in capsys.readouterr().err


KITTI_DRIVE = SHARED / "kitti_raw_sample" / "2011_09_26" / "2011_09_26_drive_sample_sync"


@pytest.mark.skipif(not KITTI_DRIVE.is_dir(), reason=f"shared KITTI raw sample missing: {KITTI_DRIVE}")
def test_raw_input_writes_the_see_through_returns_that_conditioning_removes(tmp_path) -> None:
    """--raw-input (KITTI DC's velodyne_raw): the plain projection of the scan; conditioning it gives
    make-gt's default (filtered) input, pixel for pixel (one real HDL-64E frame as a single sweep)."""
    from depth_nodes.completion.conditioning import condition
    from depth_nodes.data.gt_sources import Drive

    full = open_drive(KITTI_DRIVE, (1216, 352))
    drive = Drive(full.name, [full.frames[40]], crop=full.crop, single_sweep=True)
    make_gt(drive, tmp_path / "filtered", progress=False)
    summary = make_gt(drive, tmp_path / "raw", progress=False, raw_input=True)
    assert summary["velodyne_raw"].startswith("raw")
    (f,) = list_frames(tmp_path / "filtered")
    (r,) = list_frames(tmp_path / "raw")
    filtered, raw = f.load()["sparse"], r.load()["sparse"]
    assert np.all(raw[filtered > 0] == filtered[filtered > 0])
    n_extra = np.count_nonzero((raw > 0) & (filtered == 0))
    assert n_extra > 300, n_extra  # the see-through returns
    # make-gt filters the full 1242x375 image, this the 1216x352 crop: the filter's 2x2 min-pooling grid
    # then has the other parity (crop offsets 13, 23 px are odd), which moves borderline decisions
    differ = np.count_nonzero((condition(raw).depth > 0) != (filtered > 0))
    assert differ <= 0.015 * np.count_nonzero(raw), differ  # measured: 148 of ~17k returns (0.9 %)
    rings = cv2.imread(str(next((tmp_path / "raw" / "velodyne_raw_rings").glob("*.png"))), cv2.IMREAD_UNCHANGED)
    assert np.all(rings[raw > 0] > 0)
