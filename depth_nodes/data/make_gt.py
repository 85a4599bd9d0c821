"""``depth-nodes make-gt DRIVE -o DIR``: KITTI-DC-style semi-dense ground truth for a real drive.

Like KITTI's own depth-completion ground truth (Uhrig et al. 2017: 11 registered scans accumulated, then
outliers removed), for each frame ``k``:

1. **Register** the drive: dataset poses where given (PandaSet), else KISS-ICP LiDAR odometry.
2. **Accumulate** the scans ``k-N .. k+N`` into frame ``k``'s LiDAR frame and project them into its camera.
3. **Drop what moves or disagrees with the current scan**: a neighbour point is kept only when its depth
   lies within the band spanned by the current scan's own returns around its pixel (the min and max of
   the current returns within +-``window_rows_px`` rows and +-``window_cols_px`` columns, widened by
   ``rel_tol`` and ``abs_tol_m``). A car that drove on leaves points in front of the background it has
   uncovered, or behind the car that now stands there: both fall outside the band. Pixels with no current
   return in the window get no accumulated depth (no evidence there).
4. **Per pixel**, the mean of the points within ``zbuffer_band`` of the nearest one (a z-buffer that
   averages the surface's samples instead of keeping its noisiest near one); the current scan's own
   returns replace the accumulated value at their pixels.
5. **Drop what the camera cannot see**: the project's parallax occlusion filter
   (:func:`depth_nodes.core.projection.remove_occluded`) on the merged image.

Output: the ``val_selection_cropped`` layout (``image/``, ``velodyne_raw/`` = the current scan projected
with the occlusion filter, as the node does (``raw_input=True`` / ``--raw-input``: without it, a plain
z-buffer projection with the see-through returns, exactly as KITTI DC's own ``velodyne_raw``; the GT is the
same either way), ``groundtruth_depth/``, ``intrinsics/``, and
``velodyne_raw_rings/`` with ring id + 1 per pixel where rings are known, and ``poses/``: each frame's
camera pose ``T_world_cam = T_world_lidar @ inv(T_cam_lidar)`` from the step-1 poses, for photometric
self-supervision; not for a single sweep); PandaSet writes ``pandar64/``
and, for frames with PandarGT points, ``pandargt/`` (PandarGT input, the same Pandar64 ground truth).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from depth_nodes.core.projection import OcclusionFilter, project_points, remove_occluded, scan_to_depth
from depth_nodes.core.transforms import invert, transform_points
from depth_nodes.data.gt_sources import (
    Drive,
    DriveFrame,
    PlaneAligner,
    ScanAligner,
    kiss_icp_poses,
    open_drive,
)
from depth_nodes.data.kitti_depth import crop_bottom_centre, frame_filename, write_frame
from depth_nodes.errors import DataFormatError

RINGS_DIR = "velodyne_raw_rings"


@dataclass(frozen=True)
class GTParams:
    """Accumulation and filtering settings (pixels at the input resolution)."""

    neighbours: int = 5
    #: None = 1.5 x the median vertical gap between the current scan's returns (its ring spacing), + 1.
    window_rows_px: int | None = None
    window_cols_px: int = 2
    rel_tol: float = 0.01
    abs_tol_m: float = 0.1
    zbuffer_band_rel: float = 0.01
    zbuffer_band_m: float = 0.05
    max_depth_m: float = 120.0
    #: Refine each neighbour's pose against the current scan (ICP); False = the poses as given.
    refine: bool = True

    def __post_init__(self) -> None:
        if self.neighbours < 0 or self.window_cols_px < 0 or (self.window_rows_px or 0) < 0:
            raise ValueError("neighbours and windows must be >= 0")
        if self.rel_tol < 0 or self.abs_tol_m < 0 or self.zbuffer_band_rel < 0 or self.zbuffer_band_m < 0:
            raise ValueError("tolerances must be >= 0")


def ring_spacing_px(sparse: np.ndarray) -> float:
    """Median vertical gap (px) between consecutive returns of a column: the scan's ring spacing."""
    ys, xs = np.nonzero(sparse.T > 0)  # column-major: xs are rows, ys columns
    if xs.size < 2:
        return 1.0
    same = ys[1:] == ys[:-1]
    gaps = (xs[1:] - xs[:-1])[same]
    gaps = gaps[gaps > 1]
    return float(np.median(gaps)) if gaps.size else 1.0


def window_bounds(sparse: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of the returns within +-rows x +-cols of each pixel (inf / 0 where there is none)."""
    kernel = np.ones((2 * rows + 1, 2 * cols + 1), np.uint8)
    lo = cv2.erode(np.where(sparse > 0, sparse, np.inf).astype(np.float32), kernel, borderValue=np.inf)
    hi = cv2.dilate(sparse.astype(np.float32), kernel, borderValue=0.0)
    return lo, hi


def band_zbuffer(idx: np.ndarray, z: np.ndarray, n_pixels: int, band_rel: float, band_m: float) -> np.ndarray:
    """Per pixel: mean depth of the points within ``band`` of the nearest one (0 where none)."""
    zmin = np.full(n_pixels, np.inf, np.float32)
    np.minimum.at(zmin, idx, z)
    near = z <= zmin[idx] * (1 + band_rel) + band_m
    s = np.bincount(idx[near], weights=z[near], minlength=n_pixels)
    n = np.bincount(idx[near], minlength=n_pixels)
    out = np.zeros(n_pixels, np.float32)
    hit = n > 0
    out[hit] = s[hit] / n[hit]
    return out


def neighbour_poses(
    drive: Drive, poses: np.ndarray, k: int, first: int, last: int, refine: bool = True
) -> dict[int, np.ndarray]:
    """``T_k_j`` (scan j's LiDAR frame -> scan k's) for j in first..last, j != k.

    ``refine``: KISS-ICP point-to-map alignment onto scan k from the given poses, then point-to-plane
    (:class:`PlaneAligner`, normals from the neighbours within +-2 frames) for the tilt.
    """
    T_k_world = invert(poses[k])
    rel = {j: T_k_world @ poses[j] for j in range(first, last + 1) if j != k}
    if not refine or not rel:
        return rel
    cur = drive.frames[k].points
    coarse = ScanAligner(cur)
    rel = {j: coarse.align(drive.frames[j].points, T) for j, T in rel.items()}
    # Normals only where the camera looks (points in front of it, 5 m margin): the planes there decide.
    T_cam = np.asarray(drive.frames[k].T_cam_lidar, np.float32)
    front = cur[cur @ T_cam[2, :3] + T_cam[2, 3] > -5.0]
    near = [transform_points(T, drive.frames[j].points) for j, T in rel.items() if abs(j - k) <= 2]
    fine = PlaneAligner(front, np.vstack([cur, *near]))
    return {j: fine.align(drive.frames[j].points, T) for j, T in rel.items()}


def frame_ground_truth(
    drive: Drive, poses: np.ndarray, k: int, params: GTParams = GTParams(), *, filter_motion: bool = True
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(sparse input, ground truth, stats) of frame ``k`` at full image resolution (metres, 0 = none).

    ``filter_motion=False`` skips step 3 (for tests and figures of what it removes).
    """
    cur = drive.frames[k]
    cam, T = cur.camera, np.asarray(cur.T_cam_lidar, np.float64)
    occ = OcclusionFilter()
    sparse = scan_to_depth(
        cur.points, T, cam, occlusion=occ, max_depth_m=params.max_depth_m, on_nonfinite="drop"
    ).depth
    rows = params.window_rows_px
    if rows is None:
        rows = int(np.ceil(1.5 * ring_spacing_px(sparse))) + 1
    lo, hi = window_bounds(sparse, rows, params.window_cols_px)
    lo, hi = lo.ravel(), hi.ravel()
    idx_all, z_all, n_acc, n_kept = [], [], 0, 0
    first, last = max(0, k - params.neighbours), min(len(drive.frames) - 1, k + params.neighbours)
    rel = neighbour_poses(drive, poses, k, first, last, params.refine)
    for j, T_k_j in rel.items():
        T_cam_j = T @ T_k_j
        idx, z = project_points(
            transform_points(T_cam_j, drive.frames[j].points), cam, 0.1, params.max_depth_m
        )
        n_acc += idx.size
        if filter_motion:
            ok = (z >= lo[idx] / (1 + params.rel_tol) - params.abs_tol_m) & (
                z <= hi[idx] * (1 + params.rel_tol) + params.abs_tol_m
            )
            idx, z = idx[ok], z[ok]
        n_kept += idx.size
        idx_all.append(idx)
        z_all.append(z)
    n_pix = cam.width * cam.height
    if idx_all:
        acc = band_zbuffer(
            np.concatenate(idx_all),
            np.concatenate(z_all),
            n_pix,
            params.zbuffer_band_rel,
            params.zbuffer_band_m,
        ).reshape(cam.shape)
    else:
        acc = np.zeros(cam.shape, np.float32)
    merged = np.where(sparse > 0, sparse, acc).astype(np.float32)
    gt, hidden = remove_occluded(merged, occ)
    stats = {
        "frame": cur.index,
        "neighbours": [first, last],
        "window_rows_px": rows,
        "accumulated_points_in_view": int(n_acc),
        "kept_consistent": int(n_kept),
        "occluded_pixels": int(hidden.sum()),
        "input_pixels": int(np.count_nonzero(sparse)),
        "gt_pixels": int(np.count_nonzero(gt)),
    }
    return sparse, gt, stats


def ring_image(frame: DriveFrame, points: np.ndarray, sparse: np.ndarray) -> np.ndarray | None:
    """uint8 ring id + 1 of the return kept at each ``sparse`` pixel (0 = none); None without rings."""
    if frame.rings is None:
        return None
    from depth_nodes.data.synthetic import ring_image as _ring_image

    rings = np.asarray(frame.rings)
    ok = rings >= 0
    return _ring_image(points[ok], rings[ok], frame.T_cam_lidar, frame.camera, sparse)


def write_layout_frame(
    root: Path,
    drive: Drive,
    frame: DriveFrame,
    sparse: np.ndarray,
    gt: np.ndarray | None,
    rings: np.ndarray | None,
    T_world_lidar: np.ndarray | None = None,
) -> None:
    """One frame into ``root`` (KITTI DC layout), bottom-centre cropped when ``drive.crop`` is set; with
    ``T_world_lidar`` also its ``poses/`` sidecar (the camera pose; a crop leaves it unchanged)."""
    cam = frame.camera
    win, K = (slice(None), slice(None)), cam.K
    if drive.crop is not None:
        w, h = drive.crop
        x0, y0 = crop_bottom_centre(cam.shape, w, h)
        win, K = (slice(y0, y0 + h), slice(x0, x0 + w)), cam.crop(x0, y0, w, h).K
    T_world_cam = None if T_world_lidar is None else T_world_lidar @ invert(frame.T_cam_lidar)
    write_frame(
        root, drive.name, frame.index, frame.image[win], sparse[win], None if gt is None else gt[win], K,
        T_world_cam,
    )  # fmt: skip
    if rings is not None:
        name = frame_filename(drive.name, frame.index, RINGS_DIR)
        (root / RINGS_DIR).mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(root / RINGS_DIR / name), np.ascontiguousarray(rings[win])):
            raise DataFormatError(f"could not write {root / RINGS_DIR / name}")


def make_gt(
    drive: Drive,
    out_dir: str | Path,
    params: GTParams = GTParams(),
    frames: list[int] | None = None,
    progress: bool = True,
    raw_input: bool = False,
) -> dict:
    """Write ground truth for ``frames`` (default all) of ``drive`` under ``out_dir``; returns the summary.

    ``raw_input``: ``velodyne_raw/`` (and the extra layouts' inputs) hold the raw projection, see-through
    returns included (KITTI DC's ``velodyne_raw``); default: occlusion-filtered (conditioned) as the node's.
    """
    out = Path(out_dir)
    poses = drive.poses if drive.poses is not None else kiss_icp_poses([f.points for f in drive.frames])
    wanted = range(len(drive.frames)) if frames is None else frames
    extra_names = sorted({n for f in drive.frames for n in f.extra_points})
    main_dir = out / "pandar64" if extra_names else out
    per_frame = []
    for k in tqdm(wanted, desc=f"make-gt {drive.name}", unit="frame", disable=not progress):
        f = drive.frames[k]
        if drive.single_sweep:  # nothing to accumulate: input + rings only (held-out / ring protocols)
            params = replace(params, neighbours=0)
        sparse, gt, stats = frame_ground_truth(drive, poses, k, params)
        if raw_input:  # KITTI DC's velodyne_raw: one scan, plain z-buffer, no occlusion filtering
            sparse = scan_to_depth(
                f.points, f.T_cam_lidar, f.camera, occlusion=None, max_depth_m=params.max_depth_m,
                on_nonfinite="drop",
            ).depth  # fmt: skip
            stats["raw_input_pixels"] = int(np.count_nonzero(sparse))
        pose = None if drive.single_sweep else np.asarray(poses[k], np.float64)  # one sweep: no motion
        write_layout_frame(
            main_dir, drive, f, sparse, None if drive.single_sweep else gt, ring_image(f, f.points, sparse),
            pose,
        )  # fmt: skip
        for name, pts in f.extra_points.items():
            extra = scan_to_depth(
                pts, f.T_cam_lidar, f.camera, occlusion=None if raw_input else OcclusionFilter(),
                max_depth_m=params.max_depth_m, on_nonfinite="drop",
            ).depth  # fmt: skip
            write_layout_frame(out / name, drive, f, extra, gt, None, pose)
            stats[f"{name}_input_pixels"] = int(np.count_nonzero(extra))
        per_frame.append(stats)
    summary = {
        "drive": drive.name,
        "poses": drive.pose_source if drive.poses is not None else "LiDAR odometry (KISS-ICP)",
        "params": asdict(params),
        "velodyne_raw": "raw (see-through returns kept, as KITTI DC)" if raw_input else "conditioned",
        "layouts": [str(main_dir.relative_to(out)) or "."] + extra_names,
        "frames": per_frame,
        "T_world_lidar": np.asarray(poses)[list(wanted)].round(6).tolist(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "make_gt.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "drive",
        type=Path,
        help="KITTI raw *_sync drive, PandaSet folder or the nuScenes frame (no GT: one sweep)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output directory (KITTI DC layout)")
    parser.add_argument(
        "--neighbours", type=int, default=GTParams.neighbours, help="scans each side (default 5)"
    )
    parser.add_argument("--frames", help="frame indices to write, e.g. 0-49 or 3,7 (default all)")
    parser.add_argument("--no-crop", action="store_true", help="KITTI: full image instead of 1216x352")
    parser.add_argument(
        "--raw-input",
        action="store_true",
        help="velodyne_raw/ = the raw projection with see-through returns, as KITTI DC ships it (default: "
        "occlusion-filtered like the node's input); the ground truth is the same",
    )
    parser.epilog = (
        "Depth PNGs: uint16 = metres x 256, 0 = no data. Writes make_gt.json with per-frame stats."
    )


def parse_frames(text: str | None, n: int) -> list[int] | None:
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    except ValueError as exc:
        raise DataFormatError(f"--frames: expected e.g. 0-9,12, got {text!r}") from exc
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise DataFormatError(f"--frames: {bad} outside 0..{n - 1}")
    return out


def run(args: argparse.Namespace) -> int:
    drive = open_drive(args.drive, None if args.no_crop else (1216, 352))
    summary = make_gt(
        drive, args.output, GTParams(neighbours=args.neighbours), parse_frames(args.frames, len(drive.frames)),
        raw_input=args.raw_input,
    )  # fmt: skip
    if drive.single_sweep:
        print(
            f"{len(summary['frames'])} views of {summary['drive']}: one sweep, no accumulated GT -> {args.output}"
        )
        return 0
    px = [f["gt_pixels"] for f in summary["frames"]]
    inp = [f["input_pixels"] for f in summary["frames"]]
    print(
        f"{len(px)} frames of {summary['drive']} ({summary['poses']}): median {int(np.median(px))} GT pixels "
        f"({np.median(px) / max(1, np.median(inp)):.1f}x the input's) -> {args.output}"
    )
    return 0
