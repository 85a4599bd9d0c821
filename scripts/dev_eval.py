#!/usr/bin/env python3
"""Score completers on ``dev_gt.py`` frames (or any dir of ``NNNN.npz`` with image/sparse/gt): devkit
MAE/RMSE (holes filled like the devkit), by region (on a return, <= 2 px from one, 2-5 px, > 5 px, above
the input's top return of the column), and median latency. Methods are ``name`` or ``name:k=v,k=v``::

    PYTHONPATH=. python scripts/dev_eval.py /tmp/devgt/kitti --frames 0:25 \
        --methods nearest,ip_basic,ip_basic:extrapolate=True,guided,lidar_only
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.completion import create
from depth_nodes.eval.metrics import depth_metrics, fill_background

REGIONS = ("on", "le2", "2to5", "gt5", "above")


def parse_method(spec: str):
    name, _, kw = spec.partition(":")
    params = {}
    for item in filter(None, kw.split(";")):
        k, _, v = item.partition("=")
        try:
            params[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            params[k] = v
    return name, params


def regions(sparse: np.ndarray) -> dict[str, np.ndarray]:
    valid = sparse > 0
    dist = cv2.distanceTransform((~valid).astype(np.uint8), cv2.DIST_L2, 5)
    top = np.where(valid.any(0), valid.argmax(0), sparse.shape[0])
    above = np.arange(sparse.shape[0])[:, None] < top[None, :]
    below = ~above
    return {
        "on": valid,
        "le2": below & ~valid & (dist <= 2),
        "2to5": below & (dist > 2) & (dist <= 5),
        "gt5": below & (dist > 5),
        "above": above,
    }


def load_dc(root: Path, sl: slice) -> list[dict]:
    """KITTI DC layout (``depth-nodes make-gt`` output): velodyne_raw input, groundtruth_depth GT."""
    from depth_nodes.data.kitti_depth import list_frames

    out = []
    for fr in list_frames(root)[sl]:
        d = fr.load()
        f = {"name": fr.velodyne_raw.name, "image": d["image"], "sparse": d["sparse"], "gt": d["groundtruth"]}
        ring_path = (
            root
            / "velodyne_raw_rings"
            / fr.velodyne_raw.name.replace("_velodyne_raw_", "_velodyne_raw_rings_", 1)
        )
        if ring_path.is_file():
            f["rings"] = cv2.imread(str(ring_path), cv2.IMREAD_UNCHANGED)
        out.append(f)
    return out


def load(paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        d = np.load(p)
        out.append(
            {"name": p.stem, "image": d["image"], "sparse": d["sparse"].astype(np.float32), "gt": d["gt"]}
        )
    return out


def evaluate(frames: list[dict], specs: list[str], transform=None) -> list[dict]:
    rows = []
    for spec in specs:
        name, params = parse_method(spec)
        comp = create(name, **params)
        per, times = [], []
        reg_err = {r: [0.0, 0.0, 0] for r in REGIONS}
        for i, f in enumerate(frames):
            sparse = f["sparse"] if transform is None else transform(f["sparse"])
            if i == 0:
                comp.complete(sparse, f["image"])
            t0 = time.perf_counter()
            out = comp.complete(sparse, f["image"])
            times.append(time.perf_counter() - t0)
            filled = fill_background(out.depth)
            m = depth_metrics(out.depth, f["gt"], filled=filled)
            per.append(m)
            g = f["gt"] > 0
            for r, mask in regions(sparse).items():
                sel = mask & g
                e = (filled[sel] - f["gt"][sel]) * 1000.0
                reg_err[r][0] += np.abs(e).sum()
                reg_err[r][1] += (e**2).sum()
                reg_err[r][2] += sel.sum()
        row = {
            "method": spec,
            "mae_mm": float(np.mean([m["mae_mm"] for m in per])),
            "rmse_mm": float(np.mean([m["rmse_mm"] for m in per])),
            "coverage": float(np.mean([m["coverage"] for m in per])),
            "p50_ms": 1000 * float(np.median(times)),
        }
        for r, (a, s, n) in reg_err.items():
            row[r] = (a / max(n, 1), np.sqrt(s / max(n, 1)), n)
        rows.append(row)
    return rows


def print_rows(rows: list[dict], title: str) -> None:
    print(f"\n## {title}")
    head = "| method | MAE | RMSE | cov | p50 ms | " + " | ".join(f"{r} MAE/RMSE" for r in REGIONS) + " |"
    print(head)
    for r in rows:
        cells = " | ".join(f"{r[k][0]:.0f}/{r[k][1]:.0f}" for k in REGIONS)
        print(
            f"| {r['method']} | {r['mae_mm']:.0f} | {r['rmse_mm']:.0f} | {r['coverage']:.3f} | "
            f"{r['p50_ms']:.1f} | {cells} |"
        )
    n = rows[0]
    print("pixels: " + ", ".join(f"{k} {n[k][2]}" for k in REGIONS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+")
    p.add_argument("--frames", default=":", help="python slice of the sorted frames, e.g. 0:25")
    p.add_argument("--methods", default="nearest,ip_basic,ip_basic:extrapolate=True,guided,lidar_only")
    p.add_argument(
        "--thin", type=int, default=0, help="input = rings %% THIN == 0 (needs velodyne_raw_rings)"
    )
    p.add_argument("--holdout", type=float, default=0.0, help="score on this fraction of held-out returns")
    args = p.parse_args()
    sl = slice(*(int(x) if x else None for x in args.frames.split(":")))
    specs = args.methods.split(",")
    for d in args.dirs:
        if (Path(d) / "velodyne_raw").is_dir():
            frames = load_dc(Path(d), sl)
        else:
            frames = load(sorted(Path(d).glob("*.npz"))[sl])
        if args.thin > 1:
            for f in frames:
                has = (f["sparse"] > 0) & (f["rings"] > 0)
                keep = has & ((f["rings"].astype(np.int32) - 1) % args.thin == 0)
                f["sparse"] = np.where(keep, f["sparse"], 0).astype(np.float32)
        if args.holdout > 0:
            rng = np.random.default_rng(0)
            for f in frames:
                hold = (f["sparse"] > 0) & (rng.random(f["sparse"].shape) < args.holdout)
                f["gt"] = np.where(hold, f["sparse"], 0).astype(np.float32)
                f["sparse"] = np.where(hold, 0, f["sparse"]).astype(np.float32)
        print_rows(evaluate(frames, specs), f"{d} frames {args.frames} ({len(frames)})")


if __name__ == "__main__":
    main()
