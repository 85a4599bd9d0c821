"""``depth-nodes bench mono``: the monocular fallback with the LiDAR cut, error vs frames since the last scan.

For each scored frame ``k`` and cut ``c``: the scale is fitted on frame ``k - c`` (its image through the model,
its ``velodyne_raw``: the last scan before the cut) and applied to frame ``k``'s prediction, as the node carries
it; ``c = 0`` is the best case (the frame's own LiDAR). ``guided`` on the same frames (with their own LiDAR)
is the reference. Scored against ``groundtruth_depth`` with the devkit metrics (holes filled as the devkit does).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from depth_nodes.core.scale_fit import ScaleFitError, apply_scale, fit_scale
from depth_nodes.data.kitti_depth import list_frames
from depth_nodes.errors import DepthNodesError
from depth_nodes.eval.metrics import depth_metrics, mean_metrics


def bench(data_dir: str | Path, frames: list[int], cuts: list[int], estimator: str = "mono", model_dir: str = "",
          max_depth_m: float = 80.0, input_size_px: int = 0, guided: bool = True) -> dict:  # fmt: skip
    from depth_nodes import completion
    from depth_nodes.mono.completer import MonoCompleter

    all_frames = list_frames(data_dir)
    mono = MonoCompleter(estimator, model_dir, input_size_px, max_depth_m)
    cache: dict[int, tuple[dict, np.ndarray]] = {}
    times: list[float] = []

    def frame(i: int):
        if i not in cache:
            d = all_frames[i].load()
            if d["K"] is not None:
                mono.set_intrinsics(d["K"])
            t0 = time.perf_counter()
            cache[i] = (d, mono.predict(d["image"], d["sparse"]))
            times.append(time.perf_counter() - t0)
        return cache[i]

    rows: dict[str, list[dict]] = {f"cut_{c}": [] for c in cuts}
    rows["guided"] = []
    skipped: dict[str, int] = {}
    g = completion.create("guided") if guided else None
    for k in frames:
        dk, pk = frame(k)
        gt = dk["groundtruth"]
        if gt is None:
            raise DepthNodesError(f"{all_frames[k].name}: no groundtruth_depth to score against")
        for c in cuts:
            if k - c < 0:
                skipped[f"cut_{c}"] = skipped.get(f"cut_{c}", 0) + 1
                continue
            ds, ps = frame(k - c)
            try:
                fit = fit_scale(ps, ds["sparse"], mono.model.kind, max_depth_m=max_depth_m)
            except ScaleFitError:
                skipped[f"cut_{c}"] = skipped.get(f"cut_{c}", 0) + 1
                continue
            depth = apply_scale(pk, fit.kind, fit.scale, fit.shift, max_depth_m)
            rows[f"cut_{c}"].append({"frame": k, "scale": fit.scale, "residual": fit.residual,
                                     **depth_metrics(depth, gt)})  # fmt: skip
        if g is not None:
            rows["guided"].append({"frame": k, **depth_metrics(g.complete(dk["sparse"], dk["image"]).depth, gt)})
    return {
        "data": str(data_dir), "estimator": mono.name, "frames": frames, "cuts": cuts,
        "protocol": "scale fitted on frame k - cut (its own LiDAR), applied to frame k; cut 0 = the frame's own",
        "mean": {name: mean_metrics(r) for name, r in rows.items() if r},
        "n": {name: len(r) for name, r in rows.items()}, "skipped": skipped,
        "predict_ms_p50": float(np.median(times) * 1e3) if times else None, "per_frame": rows,
    }  # fmt: skip


def _frames(text: str, n: int) -> list[int]:
    if not text:
        return list(range(n))
    a, _, b = text.partition("-")
    return list(range(int(a), int(b or a) + 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", type=Path, help="KITTI DC layout with groundtruth_depth")
    parser.add_argument("--frames", default="", help="scored frames FIRST-LAST (default all)")
    parser.add_argument("--cuts", default="0,1,10,50", help="frames since the last scan (comma-separated)")
    parser.add_argument("--estimator", default="mono", help="mono, depth_anything_v2, prompt_depth_anything")
    parser.add_argument("--model-dir", default="", help="model directory (default: the shipped own net)")
    parser.add_argument("--max-depth-m", type=float, default=80.0)
    parser.add_argument("--json", type=Path, help="write the results here")


def run(args: argparse.Namespace) -> int:
    n = len(list_frames(args.data_dir))
    res = bench(args.data_dir, _frames(args.frames, n), [int(c) for c in args.cuts.split(",")], args.estimator,
                args.model_dir, args.max_depth_m)  # fmt: skip
    print(f"{res['estimator']} on {args.data_dir} frames {args.frames or 'all'} ({res['protocol']}):")
    for name, m in res["mean"].items():
        print(f"  {name:>8}: n={res['n'][name]:3d} AbsRel {m['absrel']:.4f} MAE {m['mae_mm']:.0f} mm "
              f"RMSE {m['rmse_mm']:.0f} mm delta1 {m['delta1']:.4f}")  # fmt: skip
    if res["skipped"]:
        print(f"  skipped (no scan that many frames earlier / no fit): {res['skipped']}")
    print(f"  prediction p50 {res['predict_ms_p50']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0
