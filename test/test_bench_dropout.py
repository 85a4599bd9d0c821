"""``depth-nodes bench dropout`` on an exact ray-cast drive: memory carried with exact poses matches the
ground truth; the fresh-LiDAR floor, coverage, the table and the figure."""

from __future__ import annotations

import numpy as np
import pytest
from test_lidar_memory import CAMERA, T_CAM_LIDAR, cam_pose, exact_depth, pose, raycast

from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data.gt_sources import Drive, DriveFrame
from depth_nodes.data.kitti_depth import write_frame
from depth_nodes.eval import bench_dropout


def synthetic_drive(tmp_path, n: int = 14, speed_mps: float = 3.0):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*CAMERA.shape, 3), dtype=np.uint8)
    frames, poses = [], []
    for i in range(n):
        P = pose(speed_mps * i / 10.0)
        pts = raycast(P)
        frames.append(DriveFrame(i, image, pts, CAMERA, T_CAM_LIDAR))
        poses.append(P)
        sparse = scan_to_depth(pts, T_CAM_LIDAR, CAMERA).depth
        truth = exact_depth(cam_pose(P))
        gt = np.where((truth < 80) & (np.arange(CAMERA.height)[:, None] > 58), truth, 0.0)  # ground < 20 m
        write_frame(tmp_path, "synthetic", i, image, sparse, gt.astype(np.float32), CAMERA.K)
    return Drive("synthetic", frames, np.asarray(poses), None, "exact")


def test_memory_on_an_exact_drive_matches_the_ground_truth(tmp_path, monkeypatch):
    drive = synthetic_drive(tmp_path)
    monkeypatch.setattr("depth_nodes.data.gt_sources.open_drive", lambda path: drive)
    res = bench_dropout.bench(tmp_path, tmp_path, [0.3, 1.0, 2.0], mono=False, progress=False)
    assert res["n"] == {"0.3": 11, "1": 4, "2": 0}
    for dk in ("0.3", "1"):
        m = res["mean"][dk]
        # static scene, exact poses: the carried scans are the truth up to the completer's interpolation (on
        # ground 6-20 m ahead seen at grazing angles); five carried scans are denser than the one fresh scan
        assert m["memory"]["mae_mm"] < 150 and m["memory"]["coverage"] > 0.9, m
        assert m["memory"]["mae_mm"] < m["guided_on_memory_px"]["mae_mm"], m
        assert m["guided"]["mae_mm"] < 300 and m["guided"]["coverage"] > 0.9
    table = bench_dropout.table(res)
    assert "| 2 s | 0 | drive too short" in table and table.count("\n") == 4
    bench_dropout.plot(res, tmp_path / "fig.png", "synthetic")
    assert (tmp_path / "fig.png").stat().st_size > 5000


def test_cli_rejects_bad_dropouts(tmp_path):
    import argparse

    from depth_nodes.errors import DataFormatError

    parser = argparse.ArgumentParser()
    bench_dropout.add_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--gt", str(tmp_path), "--dropouts", "1,x"])
    with pytest.raises(DataFormatError, match="--dropouts"):
        bench_dropout.run(args)
