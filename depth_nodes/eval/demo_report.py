"""HTML report of a ``depth-nodes demo`` run: ``index.html`` + PNG figures + ``results.json``.

The run is read back and scored by :mod:`depth_nodes.eval.demo_bags` (``evaluate``); the figures come from
:mod:`depth_nodes.eval.demo_figures`; this module only lays them out with the tables.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from depth_nodes.eval.demo_bags import CONFIDENCE, DEPTH, DemoResults, percentiles  # noqa: E402
from depth_nodes.eval.demo_figures import cloud_figure, latency_figure, per_frame_figure, timeline_figure  # noqa: E402
from depth_nodes.eval.metrics import METRIC_UNITS  # noqa: E402
from depth_nodes.eval.report import frame_figure  # noqa: E402


def _node_reference(diag: dict[str, str]) -> tuple[str, float] | None:
    """The node's own latency p50 for the histogram; its processing p50 when the latency is not usable.

    The node measures latency from the image stamp to the node clock; replaying an old bag without
    ``use_sim_time`` makes that years, so it is only shown when plausible (< 10 s).
    """
    for key, label in (
        ("latency_stamp_to_publish_p50_ms", "node's own latency p50 (image stamp -> publish)"),
        ("processing_p50_ms", "node processing p50"),
    ):
        try:
            value = float(diag.get(key, "nan"))
        except ValueError:
            continue
        if np.isfinite(value) and 0 <= value < 10_000:
            return label, value
    return None


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 10 else f"{v:.1f}"
    return html.escape(str(v))


def write_report(out_dir: Path, res: DemoResults, meta: dict) -> Path:
    """``index.html`` + PNG figures + ``results.json`` in ``out_dir``; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figs: list[tuple[str, str]] = []
    show = res.showcase
    if show.get("image") is None and DEPTH in show:
        show["image"] = np.zeros((*show[DEPTH].shape, 3), np.uint8)
    if "image" in show and DEPTH in show:
        depth = show[DEPTH]
        sparse = show.get("sparse", np.zeros(depth.shape, np.float32))
        conf = show.get(CONFIDENCE, np.zeros(depth.shape, np.float32))
        err = None
        if show.get("gt") is not None:
            gt = show["gt"]
            err = np.where(gt > 0, np.abs(np.nan_to_num(depth, nan=0.0) - gt), np.nan)
            err[(gt > 0) & ~np.isfinite(depth)] = np.nan
        frame_figure(
            out_dir / "frame.png",
            image=show["image"],
            sparse=sparse,
            depth=depth,
            confidence=conf,
            error_m=err,
            title=f"frame stamped {show['stamp_ns']} ns: input image, projected LiDAR, published depth, "
            + ("|error| vs exact ground truth, " if err is not None else "")
            + "confidence",
        )
        figs.append(("frame.png", "Image, sparse LiDAR input, published dense depth, error map, confidence"))
        for name, arr, cmap, lo, hi in (
            ("image.png", show["image"], None, None, None),
            ("sparse.png", np.ma.masked_less_equal(sparse, 0), "turbo", 0, 80),
            ("depth.png", np.ma.masked_invalid(depth), "turbo", 0, 80),
            ("confidence.png", conf, "viridis", 0, 1),
        ):
            plt.imsave(
                out_dir / name,
                arr if cmap is None else np.ma.filled(arr, np.nan),
                cmap=cmap,
                vmin=lo,
                vmax=hi,
            )
        if err is not None:
            plt.imsave(out_dir / "error.png", np.nan_to_num(err, nan=0.0), cmap="magma", vmin=0, vmax=2)
    if "cloud_xyz" in show:
        cloud_figure(out_dir / "cloud.png", show["cloud_xyz"], show.get("cloud_rgb"))
        figs.append(("cloud.png", "The published point cloud (depth/points) of the same frame"))
    latency_figure(
        out_dir / "latency.png", res.latency_ms, _node_reference(res.summary.get("diagnostics", {}))
    )
    figs.append(("latency.png", "End-to-end latency histogram"))
    timeline_figure(out_dir / "timeline.png", res)
    figs.append(("timeline.png", "Mode timeline from /diagnostics, with input and output times"))
    if res.frames:
        per_frame_figure(out_dir / "per_frame.png", res.frames)
        figs.append(("per_frame.png", "Per-frame error and latency"))

    panels_html = " ".join(
        f'<a href="{n}"><img src="{n}" title="{n}" style="width:32%;margin:2px"></a>'
        for n in ("image.png", "sparse.png", "depth.png", "confidence.png", "error.png")
        if (out_dir / n).is_file()
    )
    keys = [k for k in METRIC_UNITS if k in res.mean]
    head = "".join(f"<th>{k}{f' ({METRIC_UNITS[k]})' if METRIC_UNITS[k] else ''}</th>" for k in keys)
    metrics_html = (
        f"<table><tr>{head}<th>coverage</th></tr><tr>"
        + "".join(f"<td>{_fmt(res.mean.get(k))}</td>" for k in keys)
        + f"<td>{_fmt(float(np.nanmean([f.get('coverage', np.nan) for f in res.frames])))}</td></tr></table>"
        if keys
        else "<p>No ground truth for this input (a user bag): error metrics are not computed.</p>"
    )
    lat = percentiles(res.latency_ms)
    acc_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in res.accounting.items())
    meta_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in meta.items()
    )
    diag_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in res.summary.get("diagnostics", {}).items()
    )
    frame_keys = ["frame", "stamp_ns", "latency_ms", "valid_fraction"] + keys
    frame_rows = "".join(
        "<tr>" + "".join(f"<td>{_fmt(f.get(k))}</td>" for k in frame_keys) + "</tr>" for f in res.frames
    )
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>depth_nodes demo report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;font-size:13px;margin:0.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}</style>
</head><body>
<h1>depth_nodes demo</h1>
<p>KITTI-layout drive &rarr; rosbag2 &rarr; <code>depth-nodes play</code> &rarr; depth node (own process)
&rarr; <code>depth-nodes record</code> &rarr; this report, read back from the recorded bag.</p>
<table>{meta_rows}</table>
<h2>Accuracy</h2>
<p>Published <code>/depth/image_rect</code> against the exact ground truth, KITTI devkit metrics (holes background-filled) on
the 1216&times;352 bottom-centre crop, mean over frames; coverage = fraction of ground-truth pixels that had an
estimate before the fill.</p>
{metrics_html}
<h2>Frames accounted for</h2>
<table>{acc_rows}</table>
<h2>Latency</h2>
<p>Image published by the player &rarr; depth image received by the recorder: p50 {_fmt(lat["p50"])} ms,
p90 {_fmt(lat["p90"])} ms, p99 {_fmt(lat["p99"])} ms over {res.latency_ms.size} frames.</p>
{"".join(f'<h3>{html.escape(cap)}</h3><p><img src="{name}"></p>' for name, cap in figs)}
<h3>The same frame, one PNG per panel</h3><p>{panels_html}</p>
<h2>Per frame</h2>
<table><tr>{"".join(f"<th>{k}</th>" for k in frame_keys)}</tr>{frame_rows}</table>
<h2>Last node diagnostics</h2><table>{diag_rows}</table>
</body></html>"""
    path = out_dir / "index.html"
    path.write_text(body)
    (out_dir / "results.json").write_text(
        json.dumps(
            {
                "meta": {k: str(v) for k, v in meta.items()},
                "mean": res.mean,
                "latency_ms": lat,
                "accounting": res.accounting,
                "frames": res.frames,
                "diagnostics": res.summary.get("diagnostics", {}),
            },
            indent=2,
            default=float,
        )
        + "\n"
    )
    return path
