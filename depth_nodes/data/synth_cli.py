"""``depth-nodes synth``: write a synthetic KITTI-like drive (raw + depth-completion layouts)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from depth_nodes.data.synthetic_lidar import DEFAULT_MOTION, DEFAULT_PATTERN, PATTERNS
from depth_nodes.errors import DepthNodesError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", required=True, help="output directory (created; reused if complete)")
    parser.add_argument("--frames", type=int, default=20, help="number of 10 Hz frames (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="scene/traffic/noise seed (default 0)")
    parser.add_argument(
        "--drive",
        default="2011_09_26_drive_0001_sync",
        help="KITTI drive name (starts with a YYYY_MM_DD date)",
    )
    parser.add_argument("--width", type=int, default=1242, help="image width in px (default 1242)")
    parser.add_argument("--height", type=int, default=375, help="image height in px (default 375)")
    parser.add_argument(
        "--lidar-pattern",
        choices=PATTERNS,
        default=DEFAULT_PATTERN,
        help="LiDAR scan pattern: spinning64 (HDL-64E-like, default), spinning32 (HDL-32E-like), raster "
        "(solid-state 120 x 25 deg, no rings), rosette (Livox-like non-repetitive, no rings)",
    )
    parser.add_argument(
        "--motion",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_MOTION,
        help="measure every point from the ego pose at its own firing time (a moving sensor's skewed "
        f"sweep; default {'on' if DEFAULT_MOTION else 'off'})",
    )
    parser.add_argument("--force", action="store_true", help="regenerate even if a complete output exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-preview", action="store_true", help="skip DIR/preview.png (image, LiDAR on image, ground truth)"
    )


def write_preview(out_dir: Path) -> Path:
    """Plot the first depth-completion frame: image, LiDAR depth on the image, ground truth (metres)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from depth_nodes.data.kitti_depth import list_frames
    from depth_nodes.data.synthetic import DC_DIR

    fr = list_frames(out_dir / DC_DIR)[0].load()
    sparse, gt = fr["sparse"], fr["groundtruth"]
    vmax = float(np.percentile(gt[gt > 0], 98)) if (gt > 0).any() else 80.0
    fig, ax = plt.subplots(3, 1, figsize=(12, 10.5))
    ax[0].imshow(fr["image"])
    ax[0].set_title("image (1216 x 352 crop)")
    ys, xs = np.nonzero(sparse)
    ax[1].imshow(fr["image"])
    ax[1].scatter(xs, ys, c=sparse[ys, xs], s=0.4, cmap="turbo", vmin=0, vmax=vmax)
    ax[1].set_title(f"velodyne_raw: {ys.size} returns")
    im = ax[2].imshow(np.where(gt > 0, gt, np.nan), cmap="turbo", vmin=0, vmax=vmax)
    ax[2].set_title("groundtruth_depth (m)")
    fig.colorbar(im, ax=ax, fraction=0.02, label="depth (m)")
    for a in ax:
        a.set_axis_off()
    path = out_dir / "preview.png"
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    from depth_nodes.data.synthetic import DC_DIR, is_complete, raw_drive_dir, write_drive

    if args.frames < 1:
        raise DepthNodesError(f"--frames must be >= 1, got {args.frames}")
    if args.width < 1216 or args.height < 352:
        raise DepthNodesError(
            f"image must be at least 1216 x 352 (the KITTI crop), got {args.width} x {args.height}"
        )
    kw = {"width": args.width, "height": args.height, "pattern": args.lidar_pattern, "motion": args.motion}
    reused = not args.force and is_complete(args.out, args.seed, args.frames, args.drive, **kw)
    t0 = time.perf_counter()
    try:
        out = write_drive(
            args.out,
            seed=args.seed,
            n_frames=args.frames,
            drive=args.drive,
            progress=not args.no_progress,
            force=args.force,
            **kw,
        )
    except ValueError as exc:
        if isinstance(exc, DepthNodesError):
            raise
        raise DepthNodesError(str(exc)) from exc
    verb = "reused" if reused else f"wrote {args.frames} frames in {time.perf_counter() - t0:.1f} s"
    print(f"synth: LiDAR pattern {args.lidar_pattern}, motion skew {'on' if args.motion else 'off'}")
    print(f"synth: {verb}: raw drive {raw_drive_dir(out, args.drive)}, depth completion {out / DC_DIR}")
    if not args.no_preview:
        print(f"synth: preview {write_preview(Path(out))}")
    return 0
