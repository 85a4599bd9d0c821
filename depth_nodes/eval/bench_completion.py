"""``depth-nodes bench completion``: every completer on the same frames in one run, accuracy + latency.

Synthetic protocol (default): a seeded synthetic drive generated in memory, cropped to KITTI's 1216x352
bottom-centre crop, two inputs per frame:

- ``full``: the whole scan projected with the occlusion filter;
- ``16beam``: rings % 4 == 0 of the *occlusion-filtered* full scan (so a hidden return is neither input
  nor ground truth).

Ground truth variants: ``dense`` (the exact rendered depth restricted like KITTI's GT by the rule of
``data.synthetic.lidar_visible_gt``: a surface, not sky, inside the LiDAR's range and vertical FOV) and, for ``16beam``,
``held_out`` (the returns of the 48 rings that were not input). KITTI protocol (``--data DIR``): 20 % of
each frame's LiDAR pixels (seeded) are held out as ground truth (``held_out``), the rest is input;
``groundtruth_depth`` is a second variant where present.

Per method, input and GT: devkit metrics (mm, 1/km), AUSE of the method's confidence and of a seeded
random one, latency p50/p90/p99 over all frames (after 2 untimed warm-up calls). Also times the
projection of a 120k-point scan to 1242x375 with and without the occlusion filter.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from depth_nodes.completion.registry import available, create
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.memory import tune_malloc
from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data.kitti_depth import crop_bottom_centre, list_frames
from depth_nodes.errors import DepthNodesError
from depth_nodes.eval.evaluator import percentiles_ms, score_frame
from depth_nodes.eval.metrics import METRIC_UNITS, mean_metrics
from depth_nodes.eval.sparsification import Sparsification, mean_curves

DEFAULT_METHODS = ("nearest", "ip_basic", "ip_basic_multiscale", "guided")
REFERENCE_METHOD = "ip_basic"
CROP_W, CROP_H = 1216, 352
PROJECTION_POINTS = 120_000
WARMUP_CALLS = 2
DOCS_START = "<!-- bench-completion:start -->"
DOCS_END = "<!-- bench-completion:end -->"
RINGS_DIR = "velodyne_raw_rings"
DEFAULT_DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


@dataclass
class BenchFrame:
    """One frame of the bench: RGB image, sparse inputs by name, ground-truth variants per input."""

    image: np.ndarray
    inputs: dict[str, np.ndarray]
    gts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


# --------------------------------------------------------------------------- frame preparation
def thin_by_ring(
    points: np.ndarray,
    rings: np.ndarray,
    full_depth: np.ndarray,
    T_cam_lidar: np.ndarray,
    camera: CameraModel,
    keep_every: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Split an occlusion-filtered full projection into (kept rings' returns, held-out rings' returns).

    The kept rings (``ring % keep_every == 0``) are projected alone without filtering; a pixel is kept
    where that depth is the one the filtered full scan kept there (so returns hidden in the full scan,
    including by a nearer return of another ring on the same pixel, are dropped). Everything else the
    full scan kept is held out.
    """
    sel = (np.asarray(rings) % keep_every) == 0
    if not sel.any():
        raise DepthNodesError(
            f"no LiDAR points on rings % {keep_every} == 0 (rings {rings.min()}..{rings.max()})"
        )
    kept_raw = scan_to_depth(points[sel], T_cam_lidar, camera, occlusion=None, on_nonfinite="drop").depth
    same = (kept_raw > 0) & (full_depth > 0) & (np.abs(kept_raw - full_depth) <= 1e-5 * full_depth)
    kept = np.where(same, full_depth, 0.0).astype(np.float32)
    held_out = np.where((full_depth > 0) & ~same, full_depth, 0.0).astype(np.float32)
    return kept, held_out


def prepare_synthetic(frames: Iterable, camera: CameraModel, T_cam_lidar: np.ndarray) -> Iterator[BenchFrame]:
    """SynthFrame-like objects (``image``, ``points``, ``rings``, ``depth_gt``) -> cropped BenchFrames.

    The dense GT is restricted by ``data.synthetic.lidar_visible_gt``, the rule ``write_drive`` uses for
    its ``groundtruth_depth``, so the bench and the written data set score the same pixels.
    """
    from depth_nodes.data.synthetic import lidar_visible_gt

    x0, y0 = crop_bottom_centre(camera.shape, CROP_W, CROP_H)
    crop = (slice(y0, y0 + CROP_H), slice(x0, x0 + CROP_W))
    for f in frames:
        full = scan_to_depth(f.points, T_cam_lidar, camera, on_nonfinite="drop").depth
        kept, held = thin_by_ring(f.points, f.rings, full, T_cam_lidar, camera)
        gt = lidar_visible_gt(np.asarray(f.depth_gt, np.float32), camera, T_cam_lidar)[crop]
        yield BenchFrame(
            image=np.ascontiguousarray(f.image[crop]),
            inputs={"full": np.ascontiguousarray(full[crop]), "16beam": np.ascontiguousarray(kept[crop])},
            gts={
                "full": {"dense": gt},
                "16beam": {"dense": gt, "held_out": np.ascontiguousarray(held[crop])},
            },
        )


def prepare_kitti_dc(
    data_dir: str | Path, n_frames: int, seed: int, held_out_fraction: float = 0.2
) -> Iterator[BenchFrame]:
    """KITTI DC frames: a seeded ``held_out_fraction`` of each frame's LiDAR pixels becomes the GT.

    Input ``kitti_dc`` (GT ``held_out``, plus ``groundtruth`` where present). Where the layout has a
    ``velodyne_raw_rings/`` sidecar (uint8 ring id + 1 per pixel, as ``depth-nodes synth`` writes), a
    ``16beam`` input is added too: returns of rings % 4 == 0, GT = the other rings' returns (+ groundtruth).
    """
    rng = np.random.default_rng(seed)
    root = Path(data_dir)
    for frame in list_frames(root)[:n_frames]:
        d = frame.load()
        sparse = d["sparse"]
        ys, xs = np.nonzero(sparse > 0)
        if ys.size == 0:
            raise DepthNodesError(f"{frame.velodyne_raw}: no LiDAR returns")
        out = rng.random(ys.size) < held_out_fraction
        inp, held = sparse.copy(), np.zeros_like(sparse)
        inp[ys[out], xs[out]] = 0.0
        held[ys[out], xs[out]] = sparse[ys[out], xs[out]]
        extra = {"groundtruth": d["groundtruth"]} if d["groundtruth"] is not None else {}
        inputs = {"kitti_dc": inp}
        gts = {"kitti_dc": {"held_out": held, **extra}}
        ring_path = root / RINGS_DIR / frame.velodyne_raw.name.replace("_velodyne_raw_", f"_{RINGS_DIR}_", 1)
        if ring_path.is_file():
            rings = cv2.imread(str(ring_path), cv2.IMREAD_UNCHANGED)
            if rings is None or rings.shape != sparse.shape:
                raise DepthNodesError(f"{ring_path}: unreadable or not {sparse.shape[1]}x{sparse.shape[0]}")
            has = (sparse > 0) & (rings > 0)
            kept = has & ((rings.astype(np.int32) - 1) % 4 == 0)
            inputs["16beam"] = np.where(kept, sparse, 0.0).astype(np.float32)
            gts["16beam"] = {"held_out": np.where(has & ~kept, sparse, 0.0).astype(np.float32), **extra}
        yield BenchFrame(image=d["image"], inputs=inputs, gts=gts)


def synthetic_frames(seed: int, n_frames: int) -> Iterator[BenchFrame]:
    """The default source: ``data.synthetic.generate_drive(seed, n_frames)`` prepared for the bench."""
    from depth_nodes.data.synthetic import generate_drive, synthetic_calib

    camera, T = synthetic_calib()
    return prepare_synthetic(generate_drive(seed, n_frames), camera, T)


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


def machine_info() -> dict[str, object]:
    """CPU model, cores, library versions and date, for the JSON and the docs table."""
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if m:
            cpu = m.group(1).strip()
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


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
) -> list[dict]:
    """Complete every frame with every method and input (interleaved, so background load hits all
    methods alike), then score. Returns one row per (method, input, gt variant)."""
    completers = {m: create(m) for m in methods}
    times: dict[tuple[str, str], list[float]] = {}
    scores: dict[tuple[str, str, str], list[dict]] = {}
    curves: dict[tuple[str, str, str], list[tuple[Sparsification, Sparsification]]] = {}
    for i, frame in enumerate(
        tqdm(frames, total=n_frames, desc="bench completion", unit="frame", disable=not progress)
    ):
        for name, comp in completers.items():
            guide = frame.image if comp.uses_image else None
            for inp, sparse in frame.inputs.items():
                if i == 0:
                    for _ in range(WARMUP_CALLS):
                        comp.complete(sparse, guide)
                t0 = time.perf_counter()
                result = comp.complete(sparse, guide)
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


# --------------------------------------------------------------------------- output
COLUMNS = [
    ("method", "method", "{}"),
    ("input", "input", "{}"),
    ("gt", "GT", "{}"),
    ("mae_mm", "MAE mm", "{:.0f}"),
    ("rmse_mm", "RMSE mm", "{:.0f}"),
    ("imae_per_km", "iMAE 1/km", "{:.2f}"),
    ("irmse_per_km", "iRMSE 1/km", "{:.2f}"),
    ("absrel", "AbsRel", "{:.4f}"),
    ("delta1", "δ<1.25", "{:.4f}"),
    ("ause_rmse", "AUSE", "{:.3f}"),
    ("ause_rmse_random", "AUSE rand", "{:.3f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p90_ms", "p90 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    (f"mae_mm_vs_{REFERENCE_METHOD}", "MAE/ip", "{:.2f}"),
    (f"rmse_mm_vs_{REFERENCE_METHOD}", "RMSE/ip", "{:.2f}"),
    (f"p50_ms_vs_{REFERENCE_METHOD}", "p50/ip", "{:.2f}"),
]


def _cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return fmt.format(v)


def markdown_table(rows: list[dict]) -> str:
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(_cell(r, k, f) for k, _, f in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def markdown_section(result: dict) -> str:
    """The docs block: command, machine, table, projection timing, notes."""
    m, c, p = result["machine"], result["config"], result["projection"]
    lines = [
        f"Command: `{c['command']}`  ",
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores of {m['cores']}; Python {m['python']}, "
        f"numpy {m['numpy']}, OpenCV {m['opencv']}; {m['date']}.  ",
        f"Data: {c['source']}, {c['frames']} frames at {CROP_W}x{CROP_H}; ratios are method / `{REFERENCE_METHOD}` "
        "on the same input and GT; latency = `Completer.complete` wall time after "
        f"{WARMUP_CALLS} warm-up calls. MAE/RMSE in mm, iMAE/iRMSE in 1/km (devkit hole fill applied).",
        "",
        markdown_table(result["results"]),
        "",
    ]
    if p:
        lines.append(
            f"Projection of a {p['n_points']:,}-point scan to {p['width']}x{p['height']}: median "
            f"{p['median_ms_with_occlusion']:.2f} ms with the occlusion filter, "
            f"{p['median_ms_without_occlusion']:.2f} ms without (fastest of {p.get('repeats', 30)}: "
            f"{p['min_ms_with_occlusion']:.2f} / {p['min_ms_without_occlusion']:.2f} ms)."
        )
    if c["skipped"]:
        lines.append(f"\nSkipped (not registered in this build): {', '.join(c['skipped'])}.")
    return "\n".join(lines)


def write_plots(out_dir: Path, rows: list[dict]) -> list[Path]:
    """Sparsification curves per input/GT (all methods) and a latency chart, as PNGs in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    groups = sorted({(r["input"], r["gt"]) for r in rows})
    fig, axes = plt.subplots(
        1, len(groups), figsize=(5.2 * len(groups), 4), squeeze=False, constrained_layout=True
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (inp, gt) in zip(axes[0], groups, strict=True):
        for r, c in zip([r for r in rows if (r["input"], r["gt"]) == (inp, gt)], colors * 3, strict=False):
            sp = r.get("sparsification")
            if not sp:
                continue
            ax.plot(sp["fractions"], sp["curve"], color=c, label=f"{r['method']} ({r['ause_rmse']:.3f})")
            ax.plot(sp["fractions"], sp["oracle"], color=c, ls="--", lw=0.8)
            ax.plot(sp["fractions"], sp["random"], color=c, ls=":", lw=0.8)
        ax.set_title(f"input {inp}, GT {gt}", fontsize=10)
        ax.set_xlabel("fraction removed (least confident first)")
        ax.set_ylabel("RMSE remaining / RMSE all")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="AUSE; -- oracle, : random", title_fontsize=7)
    path = out_dir / "bench_sparsification.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    lat = {(r["method"], r["input"]): r for r in rows}
    labels = [f"{m}\n{i}" for m, i in lat]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels)), 4), constrained_layout=True)
    x = np.arange(len(labels))
    for k, (key, c) in enumerate(zip(("p50_ms", "p90_ms", "p99_ms"), colors, strict=False)):
        ax.bar(x + (k - 1) * 0.27, [r[key] for r in lat.values()], 0.27, color=c, label=key.split("_")[0])
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("completion latency (ms)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    path = out_dir / "bench_latency.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written


def update_docs(path: Path, section: str) -> None:
    """Replace the block between the bench-completion markers in ``path`` (append one if absent)."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    block = f"{DOCS_START}\n{section}\n{DOCS_END}"
    if DOCS_START in text and DOCS_END in text:
        pre, rest = text.split(DOCS_START, 1)
        post = rest.split(DOCS_END, 1)[1]
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n## Completion\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _finite(obj):
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=20, help="frames to evaluate (default 20)")
    parser.add_argument(
        "--seed", type=int, default=0, help="synthetic drive seed (and held-out/random seeds)"
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated completers; unregistered ones are skipped with a note",
    )
    parser.add_argument("--json", type=Path, help="write the full result as JSON here")
    parser.add_argument(
        "--data",
        type=Path,
        help="KITTI DC directory instead of a synthetic drive (20%% held-out LiDAR pixels)",
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
    parts = ["depth-nodes bench completion", f"--frames {args.frames}", f"--seed {args.seed}"]
    parts.append(f"--methods {','.join(methods)}")
    if args.data is not None:
        parts.append(f"--data {args.data}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    tune_malloc()
    if args.frames < 1:
        raise DepthNodesError("--frames must be >= 1")
    methods, skipped = resolve_methods(args.methods.split(","))
    for name in skipped:
        print(f"note: method {name!r} is not registered in this build: skipped", file=sys.stderr)
    if not methods:
        raise DepthNodesError(
            f"none of the methods {args.methods!r} is registered; available: {', '.join(available())}"
        )
    projection: dict = {}
    if args.data is not None:
        frames = list(prepare_kitti_dc(args.data, args.frames, args.seed))
        source = f"KITTI DC `{args.data}` (20 % held-out LiDAR pixels, seed {args.seed})"
    else:
        from depth_nodes.data.synthetic import generate_drive, synthetic_calib

        camera, T = synthetic_calib()
        drive = list(
            tqdm(
                generate_drive(args.seed, args.frames),
                total=args.frames,
                desc="synthetic drive",
                unit="frame",
            )
        )
        projection = time_projection(
            drive[0].points, T, camera, repeats=args.projection_repeats, seed=args.seed
        )
        frames = list(prepare_synthetic(drive, camera, T))
        del drive
        source = f"synthetic drive, seed {args.seed}"
    rows = run_bench(frames, methods, seed=args.seed, n_frames=len(frames))
    add_ratios(rows)
    result = {
        "machine": machine_info(),
        "config": {
            "command": command_line(args, methods + skipped),
            "source": source,
            "frames": len(frames),
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
        update_docs(args.docs, section)
        print(f"updated {args.docs}")
    elif args.markdown:
        print(section)
    return 0
