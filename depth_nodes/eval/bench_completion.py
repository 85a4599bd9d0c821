"""``depth-nodes bench completion``: every completer on the same frames in one run, accuracy + latency.

Protocols (``eval.bench_frames``): a seeded synthetic drive by default (inputs ``full`` / ``16beam``, GT
``dense`` / ``held_out``); with ``--data DIR`` real frames in the KITTI DC layout, e.g. ``depth-nodes
make-gt``'s output: GT ``accumulated`` (registered neighbouring scans; the main protocol), 20 %
``held_out`` returns, and ring thinning (``16beam``: ``rings_48of64``, ``rings_16of32``).

Per method, input and GT: devkit metrics (mm, 1/km), AUSE of the method's confidence and of a seeded
random one, latency p50/p90/p99 over all frames (after 2 untimed warm-up calls), ratios to ``ip_basic``.
Also times the projection of a 120k-point scan to 1242x375 with and without the occlusion filter
(synthetic runs). Output helpers live in ``eval.bench_report``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depth_nodes.completion.cli import add_input_arguments, occlusion_arg
from depth_nodes.completion.registry import available, create
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.memory import tune_malloc
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.errors import DepthNodesError
from depth_nodes.eval.bench_frames import (  # noqa: F401 (re-exported: the bench's public names)
    CROP_H,
    CROP_W,
    RINGS_DIR,
    BenchFrame,
    prepare_dc,
    prepare_kitti_dc,
    prepare_synthetic,
    synthetic_frames,
    thin_by_ring,
)
from depth_nodes.eval.bench_report import (  # noqa: F401
    COLUMNS,
    DEFAULT_DOCS,
    DOCS_END,
    DOCS_START,
    REFERENCE_METHOD,
    WARMUP_CALLS,
    _finite,
    machine_info,
    markdown_section,
    markdown_table,
    update_docs,
    write_plots,
)
from depth_nodes.eval.evaluator import percentiles_ms, score_frame
from depth_nodes.eval.metrics import METRIC_UNITS, mean_metrics
from depth_nodes.eval.sparsification import Sparsification, mean_curves

DEFAULT_METHODS = ("nearest", "ip_basic", "ip_basic_multiscale", "guided", "guided_extrapolate", "lidar_only")
PROJECTION_POINTS = 120_000


# --------------------------------------------------------------------------- measurements
def time_projection(
    points: np.ndarray, T_cam_lidar: np.ndarray, camera: CameraModel, *, repeats: int = 30, seed: int = 0
) -> dict[str, float]:
    """Median time (ms) to project exactly 120k points (the scan sub/over-sampled) with/without occlusion."""
    rng = np.random.default_rng(seed)
    pts = np.asarray(points, np.float32)[:, :3]
    idx = rng.choice(pts.shape[0], PROJECTION_POINTS, replace=pts.shape[0] < PROJECTION_POINTS)
    scan = np.ascontiguousarray(pts[idx])
    out: dict[str, float] = {
        "n_points": PROJECTION_POINTS,
        "width": camera.width,
        "height": camera.height,
        "repeats": repeats,
    }
    for label, occ in (("with_occlusion", "default"), ("without_occlusion", None)):
        kw = {} if occ == "default" else {"occlusion": None}
        for _ in range(3):
            scan_to_depth(scan, T_cam_lidar, camera, **kw)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            scan_to_depth(scan, T_cam_lidar, camera, **kw)
            times.append(time.perf_counter() - t0)
        out[f"median_ms_{label}"] = float(np.median(times) * 1000.0)
        out[f"min_ms_{label}"] = float(np.min(times) * 1000.0)  # robust to load from other processes
    return out


def resolve_methods(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(registered methods in the given order, skipped ones)."""
    registered = available()
    wanted = [n.strip() for n in names if n.strip()]
    return [n for n in wanted if n in registered], [n for n in wanted if n not in registered]


def run_bench(
    frames: Iterable[BenchFrame],
    methods: list[str],
    *,
    seed: int = 0,
    n_frames: int | None = None,
    progress: bool = True,
    params: dict | None = None,
) -> list[dict]:
    """Complete every frame with every method and input (interleaved, so background load hits all
    methods alike), then score. Returns one row per (method, input, gt variant). ``params`` go to every
    completer's constructor (e.g. ``max_depth_m``, ``occlusion``). Inputs not in the frame's
    ``conditioned`` set are raw: each completer conditions them (inside the timed call)."""
    completers = {m: create(m, **(params or {})) for m in methods}
    times: dict[tuple[str, str], list[float]] = {}
    scores: dict[tuple[str, str, str], list[dict]] = {}
    curves: dict[tuple[str, str, str], list[tuple[Sparsification, Sparsification]]] = {}
    for i, frame in enumerate(
        tqdm(frames, total=n_frames, desc="bench completion", unit="frame", disable=not progress)
    ):
        for name, comp in completers.items():
            guide = frame.image if comp.uses_image else None
            for inp, sparse in frame.inputs.items():
                cond = inp in frame.conditioned
                if i == 0:
                    for _ in range(WARMUP_CALLS):
                        comp.complete(sparse, guide, conditioned=cond)
                t0 = time.perf_counter()
                result = comp.complete(sparse, guide, conditioned=cond)
                times.setdefault((name, inp), []).append(time.perf_counter() - t0)
                for gt_name, gt in frame.gts[inp].items():
                    s = score_frame(result.depth, result.confidence, gt, seed=seed * 1000 + i)
                    scores.setdefault((name, inp, gt_name), []).append(s.metrics)
                    if s.sparsification is not None:
                        curves.setdefault((name, inp, gt_name), []).append(
                            (s.sparsification, s.sparsification_random)
                        )
    rows = []
    for (name, inp, gt_name), per_frame in scores.items():
        mean = mean_metrics(per_frame)
        for key in ("ause_rmse", "ause_rmse_random"):
            vals = [m[key] for m in per_frame if key in m and np.isfinite(m[key])]
            mean[key] = float(np.mean(vals)) if vals else float("nan")
        mean["coverage"] = float(np.nanmean([m["coverage"] for m in per_frame]))
        row = {"method": name, "input": inp, "gt": gt_name, **mean, **percentiles_ms(times[(name, inp)])}
        pairs = curves.get((name, inp, gt_name), [])
        s_mean = mean_curves([p[0] for p in pairs])
        s_rand = mean_curves([p[1] for p in pairs])
        if s_mean is not None and s_rand is not None:
            row["sparsification"] = {
                "fractions": s_mean.fractions.tolist(),
                "curve": s_mean.curve.tolist(),
                "oracle": s_mean.oracle.tolist(),
                "random": s_rand.curve.tolist(),
            }
        rows.append(row)
    return rows


def add_ratios(rows: list[dict], reference: str = REFERENCE_METHOD) -> None:
    """Add ``*_vs_ref`` ratios (method / reference on the same input and GT) in place."""
    ref = {(r["input"], r["gt"]): r for r in rows if r["method"] == reference}
    for r in rows:
        base = ref.get((r["input"], r["gt"]))
        if base is None:
            continue
        for key in ("mae_mm", "rmse_mm", "p50_ms"):
            r[f"{key}_vs_{reference}"] = r[key] / base[key] if base[key] else float("nan")


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames", type=int, help="frames to evaluate (default: 20 synthetic; all of --data, per layout)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="synthetic drive seed (and held-out/random seeds)"
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated completers; unregistered ones are skipped with a note",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="bench a trained model directory (depth-nodes train's model/) as method NAME, next to --methods; "
        "NAME=DIR@torch runs it on torch instead of ONNX Runtime (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write the full result as JSON here")
    parser.add_argument(
        "--data",
        type=Path,
        help="real frames instead of a synthetic drive: a KITTI DC layout (e.g. make-gt's output) or a "
        "folder of such layouts; protocols accumulated GT, 20%% held-out returns, 16 of 64 / 16 of 32 rings",
    )
    parser.add_argument(
        "--max-depth-m", type=float, help="max_depth_m of every completer (default: each one's own)"
    )
    add_input_arguments(parser)
    parser.add_argument(
        "--docs-key", help="docs block of a --data run (default: the data folder's name, e.g. kitti)"
    )
    parser.add_argument("--update-docs", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="benchmarks page for --update-docs")
    parser.add_argument("--markdown", action="store_true", help="print the docs markdown block")
    parser.add_argument(
        "--plots", type=Path, help="write sparsification and latency plots (PNG) into this folder"
    )
    parser.add_argument("--projection-repeats", type=int, default=30, help="timed projection runs (median)")
    parser.epilog = (
        "Units: MAE/RMSE in mm, iMAE/iRMSE in 1/km, latency in ms (p50/p90/p99 of Completer.complete), "
        "AUSE unitless (area between normalised sparsification curves, RMSE)."
    )


def command_line(args: argparse.Namespace, methods: list[str]) -> str:
    """The command that reproduces this run (for the docs)."""
    parts = ["depth-nodes bench completion"]
    if args.frames is not None:
        parts.append(f"--frames {args.frames}")
    parts += [f"--seed {args.seed}", f"--methods {','.join(methods)}"]
    if args.data is not None:
        parts.append(f"--data {args.data}")
    if args.max_depth_m is not None:
        parts.append(f"--max-depth-m {args.max_depth_m:g}")
    if args.data is not None and getattr(args, "conditioned", False):
        parts.append("--conditioned")
    parts += [f"--occlusion {o}" for o in getattr(args, "occlusion", None) or []]
    parts += [f"--model {spec}" for spec in getattr(args, "model", [])]
    return " ".join(parts)


def count_dc_frames(data_dir: Path, n_frames: int | None) -> tuple[int, str]:
    """Frames a ``--data`` run will score, and the image size of the first."""
    from depth_nodes.data.kitti_depth import list_frames, read_rgb
    from depth_nodes.eval.bench_frames import dc_layouts

    layouts = [list_frames(root)[:n_frames] for _, root in dc_layouts(data_dir)]
    h, w = read_rgb(layouts[0][0].image).shape[:2]
    return sum(len(f) for f in layouts), f"{w}x{h}"


def register_models(specs: Iterable[str]) -> list[str]:
    """Register ``NAME=DIR[@backend]`` model directories as learned completers; returns their names."""
    from depth_nodes.completion.registry import register
    from depth_nodes.pipeline.learned_completer import LearnedCompleter

    names = []
    for spec in specs:
        name, sep, rest = spec.partition("=")
        directory, _, backend = rest.partition("@")
        if not sep or not name or not directory:
            raise DepthNodesError(f"--model {spec!r}: expected NAME=DIR or NAME=DIR@backend")
        if not Path(directory).is_dir():
            raise DepthNodesError(f"--model {spec!r}: {directory} is not a directory")
        extra = {"backend": backend} if backend else {}
        register(name, f"learned model of {directory}")(
            lambda _d=directory, _e=extra, **p: LearnedCompleter(model_dir=_d, fallback="", **{**_e, **p})
        )
        names.append(name)
    return names


def run(args: argparse.Namespace) -> int:
    tune_malloc()
    if args.frames is not None and args.frames < 1:
        raise DepthNodesError("--frames must be >= 1")
    extra = register_models(args.model)
    methods, skipped = resolve_methods(args.methods.split(",") + extra)
    for name in skipped:
        print(f"note: method {name!r} is not registered in this build: skipped", file=sys.stderr)
    if not methods:
        raise DepthNodesError(
            f"none of the methods {args.methods!r} is registered; available: {', '.join(available())}"
        )
    projection: dict = {}
    size = f"{CROP_W}x{CROP_H}"
    if args.data is not None:
        n_frames, size = count_dc_frames(args.data, args.frames)
        frames: Iterable[BenchFrame] = prepare_dc(  # streamed: big images
            args.data, args.frames, args.seed, conditioned=args.conditioned
        )
        kind = (
            "conditioned (declared: not filtered again)"
            if args.conditioned
            else "raw velodyne_raw, conditioned inside each completer's `complete` (KITTI DC's protocol)"
        )
        source = (
            f"`{args.data}` (KITTI DC layout; input: {kind}; GT: accumulated = its groundtruth_depth, "
            f"held_out = 20 % of the conditioned returns (seed {args.seed}), rings_48of64 / rings_16of32 = "
            "rings the 16-beam input lacks)"
        )
    else:
        from depth_nodes.data.synthetic import generate_drive, synthetic_calib

        n_frames = args.frames or 20
        camera, T = synthetic_calib()
        drive = list(
            tqdm(
                generate_drive(args.seed, n_frames),
                total=n_frames,
                desc="synthetic drive",
                unit="frame",
            )
        )
        projection = time_projection(
            drive[0].points, T, camera, repeats=args.projection_repeats, seed=args.seed
        )
        frames = list(prepare_synthetic(drive, camera, T))
        del drive
        source = (
            f"synthetic drive, seed {args.seed}; inputs: raw = plain z-buffer projection with see-through "
            "returns (KITTI DC's velodyne_raw protocol, conditioned inside each completer), full / 16beam = "
            "the node's filtered projection (declared conditioned)"
        )
    params = {} if args.max_depth_m is None else {"max_depth_m": args.max_depth_m}
    flt = occlusion_arg(args)
    if not (isinstance(flt, str) and flt == "keep"):
        params["occlusion"] = flt
    rows = run_bench(frames, methods, seed=args.seed, n_frames=n_frames, params=params)
    add_ratios(rows)
    result = {
        "machine": machine_info(),
        "config": {
            "command": command_line(args, methods + skipped),
            "source": source,
            "frames": n_frames,
            "size": size,
            "seed": args.seed,
            "methods": methods,
            "skipped": skipped,
            "units": {**{k: v for k, v in METRIC_UNITS.items() if v}, "latency": "ms"},
        },
        "projection": projection,
        "results": rows,
    }
    print(markdown_table(rows))
    if projection:
        print(
            f"projection of {PROJECTION_POINTS} points to {projection['width']}x{projection['height']}: median "
            f"{projection['median_ms_with_occlusion']:.2f} ms with occlusion filter, "
            f"{projection['median_ms_without_occlusion']:.2f} ms without"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_finite(result), indent=2))
        print(f"JSON: {args.json}")
    if args.plots:
        for path in write_plots(args.plots, rows):
            print(f"plot: {path}")
    section = markdown_section(result)
    if args.update_docs:
        key = None if args.data is None else (args.docs_key or args.data.resolve().name)
        update_docs(args.docs, section, key)
        print(f"updated {args.docs}")
    elif args.markdown:
        print(section)
    return 0
