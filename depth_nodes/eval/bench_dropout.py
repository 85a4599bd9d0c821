"""``depth-nodes bench dropout DRIVE --gt GT_DIR``: the LiDAR dropped for 0.3 / 1 / 2 / 5 s on a real drive.

For every frame ``k`` of the drive and dropout length ``d`` (``c = round(d * rate_hz)`` frames): the last scan
the node has is frame ``k - c``'s; frame ``k``'s image is scored against make-gt's accumulated ground truth
(``groundtruth_depth`` of ``GT_DIR``) with

- ``memory``: the scans ``k-c-N+1 .. k-c`` (:class:`~depth_nodes.pipeline.lidar_memory.LidarMemory`) carried to
  frame ``k`` with the drive's poses (KITTI: the KISS-ICP odometry make-gt computed, read from its
  ``make_gt.json``; PandaSet: the dataset's poses), completed with the node's ``guided`` completer;
- ``memory+mono``: the same, the monocular net filling where the memory has nothing, its scale fitted to the
  carried memory returns of frame ``k`` itself;
- ``mono``: the monocular net on frame ``k`` with the scale fitted on frame ``k - c`` (the last fit before the
  dropout, what ``monocular`` mode carries);
- ``guided``: fresh LiDAR (frame ``k``'s own scan): the floor.

Scores per method: MAE / RMSE on the ground-truth pixels it covers, and ``coverage`` = the share of ground-truth
pixels with an estimate; ``guided`` and ``mono`` are also scored on the very pixels the memory methods cover
(``*_on_memory_px``), the like-for-like comparison. Memory is not aged out here (its ``max_age_s`` is lifted):
the bench measures how it degrades, which is what the node's ``memory_max_age_s`` default is chosen from.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from depth_nodes.core.transforms import invert
from depth_nodes.data.kitti_depth import crop_bottom_centre, frame_filename, read_depth_png
from depth_nodes.errors import DataFormatError, DepthNodesError
from depth_nodes.pipeline.lidar_memory import LidarMemory, MemoryParams
from depth_nodes.pipeline.memory_estimate import estimate_from_memory

METHODS = ("memory", "memory+mono", "mono", "guided")


def _poses(drive, gt_dir: Path) -> tuple[np.ndarray, str]:
    summary = gt_dir / "make_gt.json"
    if summary.is_file():
        info = json.loads(summary.read_text())
        poses = np.asarray(info.get("T_world_lidar", []), np.float64)
        if poses.shape == (len(drive.frames), 4, 4):
            return poses, f"{info.get('poses', '?')} (make_gt.json)"
    if drive.poses is not None:
        return np.asarray(drive.poses, np.float64), drive.pose_source
    from depth_nodes.data.gt_sources import kiss_icp_poses

    return kiss_icp_poses([f.points for f in drive.frames]), "LiDAR odometry (KISS-ICP), computed here"


def _layout(gt_dir: Path) -> Path:
    return gt_dir / "pandar64" if (gt_dir / "pandar64" / "groundtruth_depth").is_dir() else gt_dir


def _scores(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    has = gt > 0
    est = np.isfinite(pred) & (pred > 0)
    use = has & est if mask is None else has & est & mask
    err = np.abs(pred[use] - gt[use]) if use.any() else np.zeros(0)
    return {
        "mae_mm": float(err.mean() * 1e3) if err.size else float("nan"),
        "rmse_mm": float(np.sqrt(np.mean(err**2)) * 1e3) if err.size else float("nan"),
        "coverage": float((has & est).sum() / max(1, has.sum())),
    }


class _Frames:
    """The drive's frames in the ground truth's geometry (KITTI: bottom-centre crop), loaded on demand."""

    def __init__(self, drive, gt_dir: Path) -> None:
        self.drive, self.root = drive, _layout(gt_dir)
        self._cache: dict[int, dict] = {}

    def __getitem__(self, k: int) -> dict:
        if k not in self._cache:
            f = self.drive.frames[k]
            cam, image = f.camera, f.image
            if self.drive.crop is not None:
                w, h = self.drive.crop
                x0, y0 = crop_bottom_centre(cam.shape, w, h)
                cam, image = cam.crop(x0, y0, w, h), image[y0 : y0 + h, x0 : x0 + w]
            gt_path = (
                self.root
                / "groundtruth_depth"
                / frame_filename(self.drive.name, f.index, "groundtruth_depth")
            )
            raw_path = self.root / "velodyne_raw" / frame_filename(self.drive.name, f.index, "velodyne_raw")
            if not gt_path.is_file():
                raise DataFormatError(
                    f"no ground truth for frame {f.index}: {gt_path} (run depth-nodes make-gt)"
                )
            self._cache[k] = {
                "camera": cam, "image": np.ascontiguousarray(image), "gt": read_depth_png(gt_path),
                "sparse": read_depth_png(raw_path), "T_cam_lidar": np.asarray(f.T_cam_lidar, np.float64),
            }  # fmt: skip
        return self._cache[k]


def bench(
    drive_dir: str | Path,
    gt_dir: str | Path,
    dropouts_s: list[float],
    *,
    frames: list[int] | None = None,
    rate_hz: float = 10.0,
    memory_scans: int = 5,
    mono: bool = True,
    max_depth_m: float = 80.0,
    progress: bool = True,
    exclude_moving: bool = True,
) -> dict:
    from depth_nodes import completion
    from depth_nodes.core.scale_fit import ScaleFitError, apply_scale, fit_scale
    from depth_nodes.data.gt_sources import open_drive

    gt_dir = Path(gt_dir)
    drive = open_drive(drive_dir)
    if drive.single_sweep:
        raise DataFormatError(f"{drive_dir}: one sweep, no drive to drop the LiDAR in")
    poses, pose_source = _poses(drive, gt_dir)
    data = _Frames(drive, gt_dir)
    n = len(drive.frames)
    frames = list(range(n)) if frames is None else frames
    guided = completion.create("guided")
    mem_completer = completion.create("guided")
    net = None
    if mono:
        from depth_nodes.mono.completer import MonoCompleter

        net = MonoCompleter("mono", max_depth_m=max_depth_m)
    preds: dict[int, np.ndarray] = {}

    def predict(k: int) -> np.ndarray:
        if k not in preds:
            d = data[k]
            net.set_intrinsics(d["camera"].K)
            preds[k] = net.predict(d["image"], d["sparse"])
        return preds[k]

    params = MemoryParams(max_scans=memory_scans, max_age_s=1e6)
    memories: dict[int, LidarMemory] = {}
    fresh_cache: dict[int, np.ndarray] = {}

    def memory_until(e: int) -> LidarMemory:
        if e not in memories:
            mem = LidarMemory(params)
            for j in range(max(0, e - memory_scans + 1), e + 1):
                mem.add(drive.frames[j].points, int(round(j * 1e9 / rate_hz)), poses[j])
            memories.clear()  # one end index at a time is enough for the loop order below
            memories[e] = mem
        return memories[e]

    cuts = {d: int(round(d * rate_hz)) for d in dropouts_s}
    rows: dict[str, list[dict]] = {f"{d:g}": [] for d in dropouts_s}
    t0 = time.perf_counter()
    for c_d, c in sorted(((d, c) for d, c in cuts.items()), key=lambda x: x[1]):
        for k in frames:
            e = k - c
            if e < 0:
                continue
            d = data[k]
            gt, cam = d["gt"], d["camera"]
            T_fixed_cam = poses[k] @ invert(d["T_cam_lidar"])
            carried = memory_until(e).carry(T_fixed_cam, int(round(k * 1e9 / rate_hz)), d["T_cam_lidar"])
            row: dict = {"frame": drive.frames[k].index, "last_scan": drive.frames[e].index,
                         "carried_points": int(carried.points_cam.shape[0]), "dropped_free": carried.n_dropped_free,
                         "travelled_m": carried.travelled_m}  # fmt: skip
            try:
                est = estimate_from_memory(
                    carried, cam, mem_completer, d["image"], max_depth_m=max_depth_m,
                    mono_pred=predict(k) if net is not None else None, mono_kind=net.model.kind if net else "metric",
                    exclude_moving=exclude_moving,
                )  # fmt: skip
                with_mono = est.completion.depth
                mem_only = with_mono.copy()
                if est.mono_mask is not None:
                    mem_only[est.mono_mask] = np.nan
            except DepthNodesError:
                mem_only = with_mono = np.full(cam.shape, np.nan, np.float32)
            if k not in fresh_cache:
                fresh_cache[k] = guided.complete(d["sparse"], d["image"]).depth
            fresh = fresh_cache[k]
            preds_k = {"memory": mem_only, "guided": fresh}
            if net is not None:
                preds_k["memory+mono"] = with_mono
                try:
                    fit = fit_scale(predict(e), data[e]["sparse"], net.model.kind, max_depth_m=max_depth_m)
                    preds_k["mono"] = apply_scale(predict(k), fit.kind, fit.scale, fit.shift, max_depth_m)
                except ScaleFitError:
                    preds_k["mono"] = np.full(cam.shape, np.nan, np.float32)
            for name, pred in preds_k.items():
                row[name] = _scores(pred, gt)
            for name in ("memory", "memory+mono"):
                if name in preds_k:
                    cover = np.isfinite(preds_k[name]) & (preds_k[name] > 0)
                    row[f"guided_on_{name}_px"] = _scores(fresh, gt, cover)
                    if "mono" in preds_k:
                        row[f"mono_on_{name}_px"] = _scores(preds_k["mono"], gt, cover)
            rows[f"{c_d:g}"].append(row)
            if progress:
                print(f"  dropout {c_d:g} s, frame {k}: memory MAE {row['memory']['mae_mm']:.0f} mm "
                      f"({row['memory']['coverage']:.2f} covered), guided {row['guided']['mae_mm']:.0f} mm",
                      flush=True)  # fmt: skip
    return {
        "drive": str(drive_dir), "gt": str(gt_dir), "poses": pose_source, "rate_hz": rate_hz,
        "memory_scans": memory_scans, "exclude_moving": exclude_moving, "dropouts_s": dropouts_s, "cut_frames": {f"{d:g}": c for d, c in cuts.items()},
        "mean": {dk: _mean(r) for dk, r in rows.items()}, "n": {dk: len(r) for dk, r in rows.items()},
        "seconds": time.perf_counter() - t0, "per_frame": rows,
    }  # fmt: skip


def _mean(rows: list[dict]) -> dict:
    out: dict = {}
    if not rows:
        return out
    for key, val in rows[0].items():
        if isinstance(val, dict):
            out[key] = {m: float(np.nanmean([r[key][m] for r in rows])) for m in val}
    return out


def table(res: dict) -> str:
    """Markdown table of the means by dropout length."""
    lines = [
        "| dropout | n | memory MAE / RMSE (mm), coverage | memory+mono | mono (scale before the dropout) "
        "| guided, fresh LiDAR | guided on memory's px | guided on memory+mono's px | mono on memory+mono's px |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(m: dict | None, cov: bool = True) -> str:
        if not m:
            return "-"
        text = f"{m['mae_mm']:.0f} / {m['rmse_mm']:.0f}"
        return text + (f", {m['coverage']:.2f}" if cov else "")

    for dk, m in res["mean"].items():
        if not res["n"][dk]:
            lines.append(f"| {dk} s | 0 | drive too short | | | | | | |")
            continue
        lines.append(
            f"| {dk} s | {res['n'][dk]} | {cell(m.get('memory'))} | {cell(m.get('memory+mono'))} | "
            f"{cell(m.get('mono'))} | {cell(m.get('guided'))} | {cell(m.get('guided_on_memory_px'), False)} | "
            f"{cell(m.get('guided_on_memory+mono_px'), False)} | {cell(m.get('mono_on_memory+mono_px'), False)} |"
        )
    return "\n".join(lines)


def plot(res: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [dk for dk in res["mean"] if res["n"][dk]]
    xs = [float(k) for k in keys]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3), dpi=90)
    for name, style in (("memory", "o-"), ("memory+mono", "s-"), ("mono", "^--"), ("guided", "k:")):
        ys = [res["mean"][k].get(name, {}).get("mae_mm", np.nan) / 1e3 for k in keys]
        cov = [res["mean"][k].get(name, {}).get("coverage", np.nan) for k in keys]
        a.plot(xs, ys, style, label=name)
        b.plot(xs, cov, style, label=name)
    a.set(xlabel="LiDAR dropout (s)", ylabel="MAE on covered GT px (m)", title=title)
    b.set(xlabel="LiDAR dropout (s)", ylabel="share of GT px with an estimate", ylim=(0, 1.02))
    a.legend(fontsize=7)
    a.grid(alpha=0.3)
    b.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("drive", type=Path, help="KITTI raw *_sync drive or PandaSet folder")
    parser.add_argument("--gt", type=Path, required=True, help="make-gt output for this drive")
    parser.add_argument("--dropouts", default="0.3,1,2,5", help="dropout lengths in s (comma-separated)")
    parser.add_argument("--frames", default="", help="scored frames FIRST-LAST (default all)")
    parser.add_argument("--rate-hz", type=float, default=10.0, help="frame rate of the drive (Hz)")
    parser.add_argument("--memory-scans", type=int, default=5, help="scans the memory keeps")
    parser.add_argument(
        "--no-mono", action="store_true", help="memory only (no monocular net: the [ros] install)"
    )
    parser.add_argument(
        "--keep-moving",
        action="store_true",
        help="memory depth also around what moved while it was recorded (default: left out)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the MAE / coverage figure here (PNG)")


def run(args: argparse.Namespace) -> int:
    try:
        dropouts = [float(x) for x in args.dropouts.split(",") if x]
    except ValueError as exc:
        raise DataFormatError(f"--dropouts: expected e.g. 0.3,1,2,5, got {args.dropouts!r}") from exc
    frames = None
    if args.frames:
        a, _, b = args.frames.partition("-")
        frames = list(range(int(a), int(b or a) + 1))
    res = bench(args.drive, args.gt, dropouts, frames=frames, rate_hz=args.rate_hz,
                memory_scans=args.memory_scans, mono=not args.no_mono, exclude_moving=not args.keep_moving)  # fmt: skip
    print(f"LiDAR dropout on {args.drive} (poses: {res['poses']}; {res['seconds']:.0f} s)")
    print(table(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    if args.plot:
        plot(res, args.plot, Path(args.drive).name)
    return 0
