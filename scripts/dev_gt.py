#!/usr/bin/env python3
"""Quick development ground truth for the guided completer (not the project's ``make-gt``).

Accumulates the scans of frames k-N..k+N into frame k (KITTI: poses from KISS-ICP; PandaSet: the
dataset's ``T_world_lidar``), z-buffers them into the camera, removes what the camera cannot see
(the project's occlusion filter, wider windows for the dense accumulation) and what disagrees with the
current scan by more than ``--tol`` (relative): an accumulated pixel nearer than the nearest current
return around it (something that moved away) or farther than the farthest (hidden now), or one on a
current return that differs from it. Writes one
``NNNN.npz`` per frame with ``image`` (RGB), ``sparse`` (the current scan, occlusion-filtered: the
completers' input) and ``gt`` (metres, 0 = none)::

    PYTHONPATH=. python scripts/dev_gt.py kitti -o /tmp/devgt/kitti
    PYTHONPATH=. python scripts/dev_gt.py pandaset -o /tmp/devgt/pandaset --scale 0.5
    PYTHONPATH=. python scripts/dev_gt.py pandargt -o /tmp/devgt/pandargt  # ring-less input
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import (
    OcclusionFilter,
    project_points,
    remove_occluded,
    scan_to_depth,
    zbuffer,
)
from depth_nodes.core.transforms import transform_points
from depth_nodes.data.kitti_depth import crop_bottom_centre

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def kiss_poses(scans: list[np.ndarray]) -> list[np.ndarray]:
    """World <- LiDAR poses of consecutive scans from KISS-ICP (no deskew: no per-point times)."""
    from kiss_icp.config import load_config
    from kiss_icp.kiss_icp import KissICP

    cfg = load_config(None)
    cfg.data.deskew = False
    odo = KissICP(cfg)
    poses = []
    for s in scans:
        odo.register_frame(s[:, :3].astype(np.float64), np.zeros(s.shape[0]))
        poses.append(odo.last_pose.copy())
    return poses


def accumulate(
    k: int, clouds: list[np.ndarray], T_world: list[np.ndarray], T_cam: np.ndarray, cam: CameraModel, n: int
) -> np.ndarray:
    """Nearest accumulated depth per pixel of frame k (0 = none), neighbours k-n..k+n."""
    inv_k = np.linalg.inv(T_world[k])
    idx_all, z_all = [], []
    for j in range(max(0, k - n), min(len(clouds), k + n + 1)):
        T = T_cam @ inv_k @ T_world[j]
        pc = transform_points(T.astype(np.float32), clouds[j][:, :3])
        idx, z = project_points(pc, cam, 0.5, 200.0)
        idx_all.append(idx)
        z_all.append(z)
    return zbuffer(np.concatenate(idx_all), np.concatenate(z_all), cam.shape)


def consistent(gt: np.ndarray, current: np.ndarray, tol: float, win: int = 5) -> np.ndarray:
    """``gt`` without pixels nearer than the nearest / farther than the farthest current return in a
    ``win`` x ``win`` window by more than ``tol`` (relative); pixels without current returns around
    them are kept."""
    inv = np.where(current > 0, 1.0 / np.maximum(current, 1e-3), 0).astype(np.float32)
    k = np.ones((win, win), np.uint8)
    near = cv2.dilate(inv, k)
    far = -cv2.dilate(np.where(inv > 0, -inv, -np.inf).astype(np.float32), k)
    g = np.where(gt > 0, 1.0 / np.maximum(gt, 1e-3), 0)
    has = near > 0
    bad = has & (gt > 0) & ((g > near * (1 + tol)) | (g < far * (1 - tol)))
    # On a current return: the accumulation must agree with it.
    bad |= (inv > 0) & (gt > 0) & (np.abs(g - inv) > tol * inv)
    return np.where(bad, 0, gt).astype(np.float32)


def make(
    frames, clouds, T_world, T_cams, cam, images, out: Path, n: int, tol: float, crop=None, every: int = 1
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    occ_dense = OcclusionFilter(vertical_px=9, horizontal_px=6)
    for k in frames[::every]:
        cur = scan_to_depth(clouds[k][:, :3], T_cams[k], cam).depth
        acc = accumulate(k, clouds, T_world, T_cams[k], cam, n)
        acc, _ = remove_occluded(acc, occ_dense)
        gt = consistent(acc, cur, tol)
        img = images(k)
        if crop is not None:
            cur, gt, img = cur[crop], gt[crop], img[crop]
        np.savez_compressed(out / f"{k:04d}.npz", image=img, sparse=cur, gt=gt)
        print(k, int((cur > 0).sum()), int((gt > 0).sum()), flush=True)


def kitti(args) -> None:
    from depth_nodes.data.kitti_raw import RawDrive

    drive = RawDrive(SHARED / "kitti_raw_sample" / "2011_09_26" / "2011_09_26_drive_sample_sync")
    scans = [drive.scan(i) for i in range(drive.n_scans)]
    poses = kiss_poses(scans)
    cam, T = drive.camera(), drive.T_cam_velo
    x0, y0 = crop_bottom_centre(cam.shape, 1216, 352)
    crop = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
    make(
        range(drive.n_scans),
        scans,
        poses,
        [T] * len(scans),
        cam,
        drive.image,
        Path(args.out),
        args.n,
        args.tol,
        crop,
        args.every,
    )


def pandaset(args) -> None:
    root = SHARED / "pandaset_seq002"
    calib = json.loads((root / "calib.json").read_text())
    c = calib["camera"]
    s = args.scale
    K = np.array(c["K"], np.float64)
    K[:2] *= s
    cam = CameraModel(round(c["width"] * s), round(c["height"] * s), K)
    fr = calib["frames"]
    clouds = [np.load(root / "frames" / f"{f['frame']:02d}.npz")["points"] for f in fr]
    T_world = [np.array(f["T_world_lidar"], np.float64).reshape(4, 4) for f in fr]
    T_cams = [np.array(f["T_cam_lidar"], np.float64).reshape(4, 4) for f in fr]

    def image(k: int) -> np.ndarray:
        img = cv2.cvtColor(cv2.imread(str(root / "frames" / f"{fr[k]['frame']:02d}.jpg")), cv2.COLOR_BGR2RGB)
        return cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)

    if args.source == "pandargt":
        # Ring-less input: the forward PandarGT (frames 00, 05, ...); GT from the Pandar64 accumulation.
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        occ_dense = OcclusionFilter(vertical_px=9, horizontal_px=6)
        for k in calib["frames_with_points_gt"]:
            gt_pts = np.load(root / "frames" / f"{k:02d}.npz")["points_gt"]
            cur64 = scan_to_depth(clouds[k][:, :3], T_cams[k], cam).depth
            acc, _ = remove_occluded(accumulate(k, clouds, T_world, T_cams[k], cam, args.n), occ_dense)
            sparse = scan_to_depth(gt_pts[:, :3], T_cams[k], cam).depth
            np.savez_compressed(
                out / f"{k:04d}.npz", image=image(k), sparse=sparse, gt=consistent(acc, cur64, args.tol)
            )
            print(k, int((sparse > 0).sum()), flush=True)
        return
    make(
        range(len(fr)),
        clouds,
        T_world,
        T_cams,
        cam,
        image,
        Path(args.out),
        args.n,
        args.tol,
        None,
        args.every,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", choices=("kitti", "pandaset", "pandargt"))
    p.add_argument("-o", "--out", required=True)
    p.add_argument("-n", type=int, default=5, help="neighbours each side")
    p.add_argument("--tol", type=float, default=0.05)
    p.add_argument("--scale", type=float, default=0.5, help="PandaSet image scale")
    p.add_argument("--every", type=int, default=1)
    args = p.parse_args()
    kitti(args) if args.source == "kitti" else pandaset(args)


if __name__ == "__main__":
    main()
