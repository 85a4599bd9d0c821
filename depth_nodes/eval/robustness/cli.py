"""``depth-nodes robustness``: error vs severity per estimator on image / LiDAR corruptions, misalignment
and attacks; writes ``OUT/index.html``, ``OUT/plots/*.png``, ``OUT/summary.md`` and ``OUT/robustness.json``.

Default data: the synthetic drive (seed 0, 8 frames, 1216 x 352 crop, dense exact GT). ``--data DRIVE``:
a KITTI raw ``*_sync`` drive; GT = 20 % held-out returns, or the accumulated GT of ``depth-nodes make-gt``
with ``--gt DIR``. Units: RMSE / MAE in mm, AUSE unitless, severities 1..5 (0 = clean).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from depth_nodes.errors import DepthNodesError

DEFAULT_FRAMES = 8
#: measured only when named (see run()): the learned completion nets on the CPU
HEAVY_BY_NAME_ONLY = ("learned", "learned_torch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--estimators",
        default="",
        help="comma-separated registered estimators (default: every registered one but learned, learned_torch "
        "and the weightless foundation models)",
    )
    parser.add_argument(
        "--data", type=Path, help="KITTI raw *_sync drive directory (default: synthetic drive)"
    )
    parser.add_argument("--gt", type=Path, help="accumulated GT of --data written by `depth-nodes make-gt`")
    parser.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help=f"frames (default {DEFAULT_FRAMES})"
    )
    parser.add_argument("--seed", type=int, default=0, help="synthetic drive / corruption seed")
    parser.add_argument(
        "--only", default="", help="comma-separated kinds to run: image, lidar, misalignment (default all)"
    )
    parser.add_argument("--severities", default="1,2,3,4,5", help="comma-separated severities (default 1..5)")
    parser.add_argument("--no-attacks", action="store_true", help="skip spoofing, defences and PGD")
    parser.add_argument("--out", type=Path, required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    from depth_nodes.completion.registry import available
    from depth_nodes.core.memory import tune_malloc
    from depth_nodes.eval.robustness.frames import CROP_H, CROP_W, kitti_frames, synthetic_frames
    from depth_nodes.eval.robustness.report import summary_markdown, write_report
    from depth_nodes.eval.robustness.runner import KINDS, make_estimator, run_suite
    from depth_nodes.pipeline.estimators import estimator_names

    tune_malloc()
    if args.frames < 1:
        raise DepthNodesError("--frames must be >= 1")
    # Default: every registered completer except the learned completion nets (a full CPU run of the shipped
    # model on both backends, PGD included, is hours on 2 cores; it is not the node's default either) and the
    # foundation models (no weights ship): name them with --estimators. Pipeline estimators (``learned``, monocular) need options such
    # as a model directory, without which they would only run their classical fallback: name them.
    registered = {**available(), **{k: "" for k in estimator_names()}}
    wanted = [n.strip() for n in args.estimators.split(",") if n.strip()] or [
        n for n in available() if n not in HEAVY_BY_NAME_ONLY and not n.startswith("mono:")
    ]
    unknown = [n for n in wanted if n not in registered]
    if unknown:
        raise DepthNodesError(f"unknown estimators {unknown}; registered: {', '.join(registered)}")
    # Build every estimator up front: an explicitly requested one that cannot be built (a learned model
    # without weights) is an error; one taken by default is skipped with a note.
    handles, skipped = [], []
    for name in wanted:
        try:
            handles.append(make_estimator(name))
        except (DepthNodesError, ImportError, OSError) as exc:
            if args.estimators:
                raise DepthNodesError(f"estimator {name!r} cannot be built: {exc}") from exc
            skipped.append(f"{name}: skipped ({type(exc).__name__}: {exc})")
            print(f"note: {skipped[-1]}", file=sys.stderr)
    if not handles:
        raise DepthNodesError("no estimator could be built: " + "; ".join(skipped))
    kinds = KINDS
    if args.only:
        sel = [k.strip() for k in args.only.split(",") if k.strip()]
        bad = [k for k in sel if k not in KINDS]
        if bad:
            raise DepthNodesError(f"--only: unknown kinds {bad}; choose from {', '.join(KINDS)}")
        kinds = {k: KINDS[k] for k in sel}
    try:
        severities = sorted({int(x) for x in args.severities.split(",") if x.strip()})
    except ValueError as exc:
        raise DepthNodesError(f"--severities: {exc}") from exc
    if not severities or not all(1 <= x <= 5 for x in severities):
        raise DepthNodesError(f"--severities must be within 1..5, got {args.severities!r}")
    if args.gt is not None and args.data is None:
        raise DepthNodesError("--gt needs --data (the drive it was made from)")
    t0 = time.perf_counter()
    if args.data is not None:
        frames = kitti_frames(args.data, args.frames, args.seed, args.gt)
        source = f"KITTI raw {args.data} ({'accumulated GT ' + str(args.gt) if args.gt else '20 % held-out returns'})"
        n = len(frames)
    else:
        frames = synthetic_frames(args.seed, args.frames)
        source = f"synthetic drive seed {args.seed} (dense exact GT)"
        n = args.frames
    result = run_suite(
        frames,
        handles,
        seed=args.seed,
        n_frames=n,
        kinds=kinds,
        severities=severities,
        attacks=not args.no_attacks,
    )
    if not result["rows"]:
        raise DepthNodesError("no estimator could run: " + "; ".join(result["notes"] + skipped))
    result["notes"] = sorted(result["notes"] + skipped)
    result["config"] = {
        "source": source,
        "frames": result["frames"],
        "estimators": list(dict.fromkeys(r["estimator"] for r in result["rows"])),
        "seed": args.seed,
        "severities": severities,
        "crop": [CROP_W, CROP_H],
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    paths = write_report(result, args.out)
    from depth_nodes.eval.robustness.report import summary

    print(summary_markdown(summary(result)))
    print(
        f"{result['frames']} frames in {result['config']['wall_s']} s; report: {paths['html']}",
        file=sys.stderr,
    )
    return 0
