"""Evaluation report: per-frame figures, summary plots (matplotlib, Agg) and a self-contained HTML page."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from depth_nodes.eval.metrics import METRIC_UNITS  # noqa: E402
from depth_nodes.eval.sparsification import Sparsification  # noqa: E402


def _depth_range(*arrays: np.ndarray) -> tuple[float, float]:
    vals = np.concatenate([a[np.isfinite(a) & (a > 0)].ravel() for a in arrays if a is not None])
    if vals.size == 0:
        return 0.0, 1.0
    return 0.0, float(np.percentile(vals, 99))


def frame_figure(
    path: str | Path,
    *,
    image: np.ndarray,
    sparse: np.ndarray,
    depth: np.ndarray,
    confidence: np.ndarray,
    error_m: np.ndarray | None,
    title: str,
) -> None:
    """Five stacked panels: RGB, sparse input (dilated for visibility), prediction, |error|, confidence."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vmin, vmax = _depth_range(sparse, depth)
    h, w = sparse.shape
    fig, axes = plt.subplots(5, 1, figsize=(10, 5 * 10 * h / w + 1.2), constrained_layout=True)
    show_sparse = np.where(sparse > 0, sparse, 0).astype(np.float32)
    # Max-filter so that single LiDAR pixels remain visible when the figure is downscaled.
    show_sparse = cv2.dilate(show_sparse, np.ones((3, 3), np.uint8))
    panels = [
        ("image", image, None, {}),
        ("sparse input (m)", np.ma.masked_less_equal(show_sparse, 0), "turbo", dict(vmin=vmin, vmax=vmax)),
        ("prediction (m)", np.ma.masked_invalid(depth), "turbo", dict(vmin=vmin, vmax=vmax)),
    ]
    if error_m is not None:
        err = cv2.dilate(np.nan_to_num(error_m, nan=0.0).astype(np.float32), np.ones((3, 3), np.uint8))
        emask = ~cv2.dilate(np.isfinite(error_m).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        panels.append(
            ("|error| at GT pixels (m)", np.ma.array(err, mask=emask), "magma", dict(vmin=0, vmax=2.0))
        )
    else:
        panels.append(("|error| (no ground truth)", np.zeros_like(sparse), "gray", dict(vmin=0, vmax=1)))
    panels.append(("confidence (0..1)", confidence, "viridis", dict(vmin=0, vmax=1)))
    for ax, (name, arr, cmap, kw) in zip(axes, panels, strict=True):
        ax.set_facecolor("black")
        im = ax.imshow(arr, cmap=cmap, interpolation="nearest", **kw)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
        if cmap is not None:
            fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def sparsification_figure(
    path: str | Path, curves: dict[str, tuple[Sparsification | None, Sparsification | None]]
) -> None:
    """Sparsification curves (method, its oracle, random) for one or more methods."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, (s, s_rand)), c in zip(curves.items(), colors * 4, strict=False):
        if s is None:
            continue
        ax.plot(s.fractions, s.curve, color=c, label=f"{name} (AUSE {s.ause:.3f})")
        ax.plot(s.fractions, s.oracle, color=c, ls="--", lw=1, label=f"{name} oracle")
        if s_rand is not None:
            ax.plot(
                s_rand.fractions,
                s_rand.curve,
                color=c,
                ls=":",
                lw=1,
                label=f"random (AUSE {s_rand.ause:.3f})",
            )
    ax.set_xlabel("fraction of pixels removed (least confident first)")
    ax.set_ylabel("RMSE of remaining / RMSE of all")
    ax.set_title("sparsification curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def per_frame_figure(path: str | Path, frames: list[dict]) -> None:
    """MAE/RMSE (mm) and latency (ms) per frame."""
    path = Path(path)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, constrained_layout=True)
    idx = np.arange(len(frames))
    for key in ("mae_mm", "rmse_mm"):
        vals = [f.get(key, np.nan) for f in frames]
        ax1.plot(idx, vals, marker="o", ms=3, label=key)
    ax1.set_ylabel("mm")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.bar(idx, [f["time_ms"] for f in frames], color="gray")
    ax2.set_ylabel("completion time (ms)")
    ax2.set_xlabel("frame")
    ax2.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 10 else f"{v:.1f}"
    return html.escape(str(v))


def write_report(
    out_dir: str | Path,
    summary: dict,
    figures: list[dict],
    curve: Sparsification | None,
    curve_random: Sparsification | None,
) -> Path:
    """Write ``report.html`` (+ summary plots) into ``out_dir``; returns its path."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    summary_figs = []
    if curve is not None:
        sparsification_figure(
            out / "figures" / "sparsification.png", {summary["method"]: (curve, curve_random)}
        )
        summary_figs.append("figures/sparsification.png")
    if summary["frames"]:
        per_frame_figure(out / "figures" / "per_frame.png", summary["frames"])
        summary_figs.append("figures/per_frame.png")
    mean = summary["mean"]
    keys = [k for k in METRIC_UNITS if k in mean] + [
        k for k in ("ause_rmse", "ause_rmse_random", "ause_ratio_vs_random") if k in mean
    ]
    head = "".join(f"<th>{k}{f' ({METRIC_UNITS[k]})' if METRIC_UNITS.get(k) else ''}</th>" for k in keys)
    mean_row = "".join(f"<td>{_fmt(mean.get(k))}</td>" for k in keys)
    timing = summary.get("timing", {})
    frame_rows = "".join(
        "<tr><td>"
        + html.escape(f["name"])
        + "</td>"
        + "".join(f"<td>{_fmt(f.get(k))}</td>" for k in keys)
        + f"<td>{_fmt(f['time_ms'])}</td></tr>"
        for f in summary["frames"]
    )
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>depth_nodes eval: {html.escape(summary["method"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>Depth completion: <code>{html.escape(summary["method"])}</code></h1>
<p>Data: <code>{html.escape(summary["data_dir"])}</code>, {summary["n_frames"]} frames; parameters:
<code>{html.escape(str(summary["params"]) or "{}")}</code>. Metrics as the KITTI devkit computes them (holes in the
prediction background-filled), mean over frames. AUSE: area between the sparsification curve of the method's
confidence and the oracle (lower is better); <i>random</i> is a seeded random confidence on the same pixels.</p>
<h2>Mean</h2><table><tr>{head}</tr><tr>{mean_row}</tr></table>
<p>Completion time: p50 {_fmt(timing.get("p50_ms"))} ms, p90 {_fmt(timing.get("p90_ms"))} ms,
p99 {_fmt(timing.get("p99_ms"))} ms (one untimed warm-up call).</p>
{"".join(f'<p><img src="{f}"></p>' for f in summary_figs)}
<h2>Frames</h2>
{"".join(f'<h3>{html.escape(f["name"])}</h3><p><img src="{f["figure"]}"></p>' for f in figures)}
<h2>Per-frame metrics</h2><table><tr><th>frame</th>{head}<th>time (ms)</th></tr>{frame_rows}</table>
</body></html>"""
    path = out / "report.html"
    path.write_text(body)
    return path
