"""Evaluate a completer on a KITTI ``val_selection_cropped`` directory.

Writes, under the output directory: ``predictions/`` (KITTI uint16 PNGs named like the ground-truth
files), ``confidence/`` (uint16 PNG x 65535, or ``.npy`` float32), ``metrics.json`` (per-frame and mean
devkit metrics, AUSE of the method's and of a seeded random confidence, timing) and ``report.html`` with
its figures. Units: mm for MAE/RMSE, 1/km for iMAE/iRMSE, ms for time.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depth_nodes.completion.cli import (
    build_completer,
    check_same_size,
    prediction_name,
    write_confidence_png,
)
from depth_nodes.data.kitti_depth import list_frames, write_depth_png
from depth_nodes.errors import InputShapeError
from depth_nodes.eval.metrics import METRIC_UNITS, depth_metrics, fill_background, mean_metrics
from depth_nodes.eval.sparsification import (
    Sparsification,
    mean_curves,
    oracle_curve,
    random_confidence,
    sparsification,
)


@dataclass
class FrameScore:
    """Metrics, sparsification of the method's and a random confidence, and latency of one frame."""

    metrics: dict[str, float]
    sparsification: Sparsification | None = None
    sparsification_random: Sparsification | None = None
    error_m: np.ndarray | None = field(default=None, repr=False)


def score_frame(
    depth: np.ndarray, confidence: np.ndarray, gt: np.ndarray, *, seed: int, metric: str = "rmse"
) -> FrameScore:
    """Devkit metrics + sparsification (method confidence and seeded random confidence) of one frame.

    ``error_m`` is the H x W absolute error of the background-filled prediction (NaN without GT).
    """
    filled = fill_background(depth)
    metrics = depth_metrics(depth, gt, filled=filled)
    gt_mask = np.isfinite(gt) & (gt > 0)
    if not gt_mask.any():
        return FrameScore(metrics)
    error = np.full(gt.shape, np.nan, np.float32)
    error[gt_mask] = np.abs(filled[gt_mask] - gt[gt_mask])
    e = error[gt_mask]
    oracle = oracle_curve(e, metric=metric)
    s = sparsification(e, np.asarray(confidence)[gt_mask], metric=metric, seed=seed, oracle=oracle)
    s_rand = sparsification(e, random_confidence(e.shape, seed + 1), metric=metric, seed=seed, oracle=oracle)
    metrics[f"ause_{metric}"] = s.ause
    metrics[f"ause_{metric}_random"] = s_rand.ause
    metrics["ause_ratio_vs_random"] = s.ause / s_rand.ause if s_rand.ause > 0 else float("nan")
    return FrameScore(metrics, s, s_rand, error)


def percentiles_ms(times_s: list[float]) -> dict[str, float]:
    """p50/p90/p99 and mean of durations in seconds, reported in ms."""
    if not times_s:
        return {}
    t = np.asarray(times_s) * 1000.0
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(t.mean())}


def evaluate(
    data_dir: str | Path,
    method: str,
    params: dict[str, object] | None = None,
    out_dir: str | Path = "eval_out",
    *,
    seed: int = 0,
    confidence_format: str = "png",
    n_figures: int = 10,
    max_frames: int | None = None,
    report: bool = True,
    progress: bool = True,
    conditioned: bool = False,
    occlusion: object = "keep",
) -> dict:
    """Run ``method`` on every frame of ``data_dir`` and write predictions, metrics and a report.

    ``velodyne_raw`` is raw by default (KITTI DC's: the completer removes see-through returns first);
    ``conditioned=True`` declares it already filtered. ``occlusion``: the filter for raw input
    (``completion.conditioning.occlusion_filter`` spec; ``"keep"`` = the completer's own).
    Returns the dict written to ``metrics.json``.
    """
    if confidence_format not in ("png", "npy", "none"):
        raise ValueError("confidence_format must be png, npy or none")
    params = dict(params or {})
    completer = build_completer(method, params, occlusion)
    frames = list_frames(data_dir)[:max_frames]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_frame: list[dict] = []
    curves: list[Sparsification] = []
    curves_random: list[Sparsification] = []
    times: list[float] = []
    figures: list[dict] = []
    fig_frames = set(
        np.linspace(0, len(frames) - 1, min(n_figures, len(frames))).round().astype(int).tolist()
    )
    if report:
        from depth_nodes.eval import report as report_mod
    warmed = False
    for i, frame in enumerate(
        tqdm(frames, desc=f"eval {completer.name}", unit="frame", disable=not progress)
    ):
        data = frame.load()
        sparse, image, gt = data["sparse"], data["image"], data["groundtruth"]
        check_same_size(sparse, image, frame.name)
        if gt is not None and gt.shape != sparse.shape:
            raise InputShapeError(
                f"{frame.groundtruth}: ground truth is {gt.shape[1]}x{gt.shape[0]} but sparse depth is "
                f"{sparse.shape[1]}x{sparse.shape[0]}"
            )
        guide = image if completer.uses_image else None
        if data["K"] is not None and hasattr(completer, "set_intrinsics"):  # monocular nets use the camera
            completer.set_intrinsics(data["K"])
        if not warmed:  # first call pays one-off costs (allocations, lazy imports): not timed
            completer.complete(sparse, guide, conditioned=conditioned)
            warmed = True
        t0 = time.perf_counter()
        result = completer.complete(sparse, guide, conditioned=conditioned)
        times.append(time.perf_counter() - t0)
        name = prediction_name(frame.image.name)
        write_depth_png(out / "predictions" / name, result.depth)
        if confidence_format == "png":
            write_confidence_png(out / "confidence" / name, result.confidence)
        elif confidence_format == "npy":
            (out / "confidence").mkdir(exist_ok=True)
            np.save(out / "confidence" / (Path(name).stem + ".npy"), result.confidence.astype(np.float32))
        row: dict = {"name": frame.name, "time_ms": times[-1] * 1000.0}
        if gt is not None:
            score = score_frame(result.depth, result.confidence, gt, seed=seed + i)
            row.update(score.metrics)
            if score.sparsification is not None:
                curves.append(score.sparsification)
                curves_random.append(score.sparsification_random)
        else:
            score = None
        per_frame.append(row)
        if report and i in fig_frames:
            fig_name = f"frame_{i:04d}.png"
            report_mod.frame_figure(
                out / "figures" / fig_name,
                image=image,
                sparse=sparse,
                depth=result.depth,
                confidence=result.confidence,
                error_m=None if score is None else score.error_m,
                title=f"{frame.name} ({completer.name})",
            )
            figures.append({"name": frame.name, "figure": f"figures/{fig_name}"})
    scored = [r for r in per_frame if "rmse_mm" in r]
    if not scored:
        print(f"note: no ground truth in {data_dir}: predictions written, no metrics")
    mean = mean_metrics(scored) if scored else {}
    curve = mean_curves(curves)
    curve_random = mean_curves(curves_random)
    if curve is not None:
        mean["ause_rmse"] = curve.ause
        mean["ause_rmse_random"] = curve_random.ause
        mean["ause_ratio_vs_random"] = curve.ause / curve_random.ause if curve_random.ause else float("nan")
    summary = {
        "method": completer.name,
        "params": params,
        "input": "conditioned" if conditioned else "raw",
        # the see-through filter applied to the input (None: declared conditioned, or the completer has none)
        "occlusion": None if conditioned or completer.occlusion is None else asdict(completer.occlusion),
        "data_dir": str(Path(data_dir).resolve()),
        "n_frames": len(frames),
        "units": {
            **{k: v for k, v in METRIC_UNITS.items() if v},
            "time": "ms",
            "ause": "normalised RMSE x fraction",
        },
        "mean": mean,
        "timing": percentiles_ms(times),
        "sparsification": {
            "method": curve.to_dict() if curve else None,
            "random": curve_random.to_dict() if curve_random else None,
        },
        "frames": per_frame,
        "seed": seed,
    }
    (out / "metrics.json").write_text(json.dumps(_finite(summary), indent=2))
    if report:
        report_mod.write_report(out, summary, figures, curve, curve_random)
    return summary


def _finite(obj):
    """JSON has no NaN: replace non-finite floats by None (recursively)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


__all__ = ["FrameScore", "evaluate", "percentiles_ms", "score_frame"]
