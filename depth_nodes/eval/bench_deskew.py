"""``depth-nodes bench deskew``: what deskewing a moving spinning LiDAR's sweep buys at object edges.

A synthetic drive rendered with ``motion=True`` (every point measured from the ego pose at its own firing
time, the sweep facing forward at the image stamp) at ``--speed`` m/s. Per frame, the same returns as

- ``uncompensated``: as measured, used at the scan stamp (what a node without motion compensation does);
- ``deskewed (odometry twist)``: :func:`core.motion.deskew` with the twist of two ego poses 0.1 s apart
  ending at the stamp (what ``motion_compensation: tf`` gets from odometry TF);
- ``deskewed (KISS-ICP twist)``: the twist from KISS-ICP on the previous scans (``lidar_odometry``; only
  when kiss-icp is installed);
- ``exact``: the returns at the stamp from the true per-point poses (the floor: range noise, pixel
  quantisation).

are projected into the camera (the core's occlusion filter) and compared with the exact depth where the
benches score it (``synthetic.lidar_visible_gt``: inside the LiDAR's field of view, within 80 m): at
object edges (pixels within 2 px of a depth discontinuity > 15 %, silhouettes against the sky included)
and everywhere; then the completed depth (``--completer``, on the KITTI crop) at the same edges. Frame 0
is skipped for every variant (no twist yet). Errors in metres; JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from depth_nodes.core import motion
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.errors import DepthNodesError

EDGE_RATIO = 1.15
EDGE_RADIUS_PX = 2
OUTLIER_M = 0.3
VARIANTS = ("uncompensated", "deskewed (odometry twist)", "deskewed (KISS-ICP twist)", "exact")


def edge_mask(depth_gt: np.ndarray, far_m: float = 150.0) -> np.ndarray:
    """Pixels within ``EDGE_RADIUS_PX`` of a depth discontinuity (max/min over 3x3 > ``EDGE_RATIO``)."""
    d = np.where(depth_gt > 0, depth_gt, far_m).astype(np.float32)
    k = np.ones((3, 3), np.uint8)
    jump = cv2.dilate(d, k) > EDGE_RATIO * cv2.erode(d, k)
    r = 2 * EDGE_RADIUS_PX + 1
    return cv2.dilate(jump.astype(np.uint8), np.ones((r, r), np.uint8)).astype(bool) & (depth_gt > 0)


class _Acc:
    def __init__(self) -> None:
        self.sums = {"edge": 0.0, "all": 0.0, "edge_out": 0, "completed_edge": 0.0}
        self.counts = {"edge": 0, "all": 0, "completed_edge": 0}
        self.ms: list[float] = []

    def add(self, sparse, gt, edges, completed, gt_crop, edges_crop) -> None:
        m = (sparse > 0) & (gt > 0)
        err = np.abs(sparse - gt)
        e = m & edges
        self.sums["all"] += float(err[m].sum())
        self.counts["all"] += int(m.sum())
        self.sums["edge"] += float(err[e].sum())
        self.sums["edge_out"] += int((err[e] > OUTLIER_M).sum())
        self.counts["edge"] += int(e.sum())
        c = np.isfinite(completed) & (gt_crop > 0) & edges_crop
        self.sums["completed_edge"] += float(np.abs(completed - gt_crop)[c].sum())
        self.counts["completed_edge"] += int(c.sum())

    def result(self) -> dict:
        n = self.counts
        return {
            "edge_returns": n["edge"],
            "edge_mae_m": self.sums["edge"] / max(n["edge"], 1),
            "edge_outliers_pct": 100.0 * self.sums["edge_out"] / max(n["edge"], 1),
            "all_returns": n["all"],
            "all_mae_m": self.sums["all"] / max(n["all"], 1),
            "completed_edge_mae_m": self.sums["completed_edge"] / max(n["completed_edge"], 1),
            "deskew_ms_p50": float(np.median(self.ms)) if self.ms else 0.0,
        }


def run_bench(seed: int, n_frames: int, speed_mps: float, completer: str, progress: bool = True) -> dict:
    from depth_nodes.completion.registry import create
    from depth_nodes.data.kitti_depth import crop_bottom_centre
    from depth_nodes.data.synthetic import (
        FRAME_PERIOD_NS,
        ego_path,
        lidar_visible_gt,
        render_frame,
        synthetic_calib,
    )

    camera, T = synthetic_calib()
    x0, y0 = crop_bottom_centre(camera.shape)
    win = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
    comp = create(completer)
    ego = ego_path(seed, speed_mps)
    try:
        from depth_nodes.core.lidar_odometry import LidarOdometry

        odometry = LidarOdometry()
    except DepthNodesError:
        odometry = None
    acc = {v: _Acc() for v in VARIANTS if odometry is not None or "KISS" not in v}
    for i in tqdm(range(n_frames + 1), desc="bench deskew", unit="frame", disable=not progress):
        f = render_frame(seed, i, motion=True, ego_speed_mps=speed_mps)
        t_s = i * FRAME_PERIOD_NS * 1e-9
        window_ns = 100_000_000
        T_a, T_b = ego.pose(t_s - window_ns * 1e-9), ego.pose(t_s)
        dt_s = f.point_time_ns * 1e-9
        t0 = time.perf_counter()
        odo_vel = motion.velocity_from_poses(T_a, f.stamp_ns - window_ns, T_b, f.stamp_ns)
        deskewed = motion.deskew(f.points_measured, dt_s, odo_vel)
        ms = (time.perf_counter() - t0) * 1e3
        kiss_vel = odometry.update(f.points_measured, f.stamp_ns) if odometry is not None else None
        if i == 0:
            continue  # no twist from the scans yet: frame 0 is not scored for any variant
        points = {
            "uncompensated": f.points_measured,
            "deskewed (odometry twist)": deskewed,
            "exact": f.points,
        }
        if kiss_vel is not None:
            points["deskewed (KISS-ICP twist)"] = motion.deskew(f.points_measured, dt_s, kiss_vel)
        edges = edge_mask(f.depth_gt)
        gt = lidar_visible_gt(f.depth_gt, camera, T)
        for name, pts in points.items():
            sparse = scan_to_depth(pts, T, camera).depth
            completed = comp.complete(sparse[win], f.image[win], conditioned=True).depth  # filtered above
            acc[name].add(sparse, gt, edges, completed, gt[win], edges[win])
        acc["deskewed (odometry twist)"].ms.append(ms)
    return {
        "seed": seed,
        "frames": n_frames,
        "speed_mps": speed_mps,
        "completer": completer,
        "edge_definition": f"within {EDGE_RADIUS_PX} px of a depth jump > {EDGE_RATIO}x (3x3)",
        "variants": {name: a.result() for name, a in acc.items()},
    }


def markdown(res: dict) -> str:
    rows = [
        f"Synthetic drive seed {res['seed']}, {res['frames']} frames, spinning64 sweep with motion at "
        f"{res['speed_mps']:.1f} m/s; completer `{res['completer']}`; edges: {res['edge_definition']}.",
        "",
        "| scan | edge returns MAE (cm) | edge returns > 30 cm (%) | all returns MAE (cm) | "
        "completed depth at edges MAE (cm) | deskew p50 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["variants"].items():
        ms = f"{r['deskew_ms_p50']:.1f}" if r["deskew_ms_p50"] else ""
        rows.append(
            f"| {name} | {100 * r['edge_mae_m']:.1f} | {r['edge_outliers_pct']:.2f} | "
            f"{100 * r['all_mae_m']:.2f} | {100 * r['completed_edge_mae_m']:.1f} | {ms} |"
        )
    return "\n".join(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames", type=int, default=10, help="frames scored (default 10; one more is rendered)"
    )
    parser.add_argument("--seed", type=int, default=0, help="synthetic drive seed")
    parser.add_argument("--speed", type=float, default=10.0, help="ego speed in m/s (default 10)")
    parser.add_argument("--completer", default="guided", help="completer for the completed-depth column")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise DepthNodesError("--frames must be >= 1")
    if not 0 <= args.speed <= 60:
        raise DepthNodesError(f"--speed must be 0 .. 60 m/s, got {args.speed}")
    res = run_bench(args.seed, args.frames, args.speed, args.completer, progress=not args.no_progress)
    print(markdown(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
