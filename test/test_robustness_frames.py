"""Frames of the robustness suite from the real KITTI drive (skips cleanly without ../shared)."""

from pathlib import Path

import numpy as np
import pytest

from depth_nodes.eval.robustness.frames import CROP_H, CROP_W, kitti_frames

DRIVE = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/kitti_raw_sample/2011_09_26/2011_09_26_drive_sample_sync"
)


@pytest.mark.skipif(
    not DRIVE.is_dir(), reason="shared KITTI sample drive (../shared/data/kitti_raw_sample) not present"
)
def test_kitti_frames_hold_out_returns_and_carry_rings_and_poses():
    pytest.importorskip("kiss_icp", reason="kiss-icp needed for the ego poses")
    frames = kitti_frames(DRIVE, 2, seed=0)
    assert len(frames) == 2
    f = frames[0]
    assert f.image.shape == (CROP_H, CROP_W, 3) and f.gt.shape == (CROP_H, CROP_W)
    n_all, n_in = f.all_points.shape[0], f.points.shape[0]
    assert 0.75 * n_all < n_in < 0.85 * n_all  # 20 % held out
    assert f.rings is not None and f.rings.shape == (n_in,) and f.rings.max() == 63
    sparse = f.sparse()
    held = f.gt > 0
    assert held.sum() > 1000 and not (held & (sparse > 0) & (np.abs(sparse - f.gt) < 1e-6)).any()
    # ego motion: the drive moves forward a little between frames (odometry, metres)
    step = np.linalg.inv(f.T_world_lidar) @ f.T_world_lidar_next
    assert 0.05 < np.linalg.norm(step[:3, 3]) < 3.0
