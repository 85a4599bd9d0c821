"""Evaluation and report of a ``depth-nodes demo`` run, from its two bags (input, recorded output).

Reads everything back from the bags with ``rosbags`` (what a user could do with any recording):
the published ``/depth/image`` of every frame is scored against ground truth (when there is some) with the
KITTI devkit metrics of :mod:`depth_nodes.eval.metrics` on the 1216 x 352 bottom-centre crop; end-to-end
latency is the recorder's reception time of each depth image minus the player's publish time of its input
image (same host clock); the mode timeline comes from the recorded ``/diagnostics``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from depth_nodes.core.projection import scan_to_depth  # noqa: E402
from depth_nodes.data import rosbag_io as rb  # noqa: E402
from depth_nodes.data.kitti_depth import crop_bottom_centre  # noqa: E402
from depth_nodes.errors import ConversionError  # noqa: E402
from depth_nodes.eval.metrics import METRIC_UNITS, depth_metrics, mean_metrics  # noqa: E402
from depth_nodes.eval.report import frame_figure  # noqa: E402
from depth_nodes.msgs.camera_info import camera_info_to_model  # noqa: E402
from depth_nodes.msgs.cloud import pointcloud2_to_arrays, pointcloud2_view, unpack_rgb  # noqa: E402
from depth_nodes.msgs.image import image_to_depth, image_to_numpy, image_to_rgb  # noqa: E402

DEPTH = "/depth/image"
CONFIDENCE = "/depth/confidence"
COLORIZED = "/depth/colorized"
CLOUD = "/depth/points"
DEPTH_INFO = "/depth/camera_info"
DIAGNOSTICS = "/diagnostics"
OUTPUT_TOPICS = (DEPTH, CONFIDENCE, COLORIZED, CLOUD, DEPTH_INFO, DIAGNOSTICS)
MODES = ("guided", "lidar_only", "monocular", "none")

#: ground truth for an image stamp: H x W metres (0 = none) in the full image, or None.
GroundTruth = Callable[[int], np.ndarray | None]


@dataclass
class DemoInputs:
    input_bag: Path
    output_bag: Path
    image_topic: str
    info_topic: str
    points_topic: str
    T_cam_lidar: np.ndarray
    published_ns: dict[int, int]  # image stamp -> wall time (ns) the player published it
    ground_truth: GroundTruth | None = None
    final_diagnostics: dict[str, str] = field(default_factory=dict)
    camera_model: str = "auto"  # the node's camera_model parameter: how the input CameraInfo is read


@dataclass
class DemoResults:
    frames: list[dict]
    mean: dict[str, float]
    latency_ms: np.ndarray
    accounting: dict[str, int]
    timeline: list[tuple[float, str]]  # (s since first image publish, mode)
    publish_s: list[float]  # image publish times (s since the first)
    output_s: list[float]  # depth reception times (s since the first image publish)
    showcase: dict  # arrays of the representative frame
    summary: dict = field(default_factory=dict)


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    p = np.percentile(values, [50, 90, 99])
    return {"p50": float(p[0]), "p90": float(p[1]), "p99": float(p[2])}


def _int(value: str | None) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return -1


def _diag_values(raw: bytes) -> dict[str, str]:
    msg = rb.deserialize(raw, "diagnostic_msgs/msg/DiagnosticArray")
    for st in msg.status:
        if st.name.startswith("depth_nodes:"):
            out = {kv.key: kv.value for kv in st.values}
            out["message"] = st.message
            return out
    return {}


def evaluate(inp: DemoInputs, progress: bool = True) -> DemoResults:
    """Score every published depth image and collect latency, accounting and the mode timeline."""
    from tqdm import tqdm

    out_summary = rb.read_summary(inp.output_bag)
    out_summary.require_topic(DEPTH, "sensor_msgs/msg/Image")
    t_first_pub = min(inp.published_ns.values()) if inp.published_ns else 0
    frames: list[dict] = []
    timeline: list[tuple[float, str]] = []
    received: dict[int, int] = {}
    last_diag: dict[str, str] = {}
    extra = 0
    n_depth = out_summary.topics[DEPTH].count
    with (
        rb.open_bag(inp.output_bag) as reader,
        tqdm(total=n_depth, desc="evaluate", unit="frame", disable=not progress) as bar,
    ):
        for topic, msgtype, log_ns, raw in rb.iter_messages(reader, inp.output_bag, [DEPTH, DIAGNOSTICS]):
            if topic == DIAGNOSTICS:
                values = _diag_values(raw)
                if values:
                    last_diag = values
                    timeline.append(((log_ns - t_first_pub) / 1e9, values.get("mode", "?")))
                continue
            stamp = rb.header_stamp_ns(raw)
            if stamp not in inp.published_ns or stamp in received:
                extra += 1  # a LiDAR-driven frame (stamped with its scan) or a repeat: not an input image
                bar.update(1)
                continue
            received[stamp] = log_ns
            msg = rb.deserialize(raw, msgtype)
            depth = image_to_depth(msg)
            row: dict = {"stamp_ns": stamp, "frame": len(frames)}
            row["latency_ms"] = (log_ns - inp.published_ns[stamp]) / 1e6
            finite = np.isfinite(depth)
            row["valid_fraction"] = float(finite.mean())
            gt = inp.ground_truth(stamp) if inp.ground_truth is not None else None
            if gt is not None:
                x0, y0 = crop_bottom_centre(depth.shape)
                win = (slice(y0, y0 + 352), slice(x0, x0 + 1216))
                row.update(depth_metrics(depth[win], gt[win]))
            frames.append(row)
            bar.update(1)

    latency = np.array([f["latency_ms"] for f in frames if "latency_ms" in f])
    mean = mean_metrics(frames) if inp.ground_truth is not None else {}
    diag = inp.final_diagnostics or last_diag
    n_played = len(inp.published_ns)
    drops = _int(diag.get("drops"))
    not_published = _int(diag.get("frames_not_published"))
    frames_in = _int(diag.get("frames_in"))
    recorded = len(received)
    accounting = {
        "played": n_played,
        "received_by_node": frames_in,
        "published": recorded,
        "dropped": drops,
        "not_published": not_published,
        # frames_in counts every frame the node took in; more than played means LiDAR-driven frames
        # (camera stale), whose drops/failures cannot be told apart from the images' in the counts.
        "lidar_driven_outputs": extra,
        "rejected_messages_in_callbacks": _int(diag.get("rejected_messages")),
        "unaccounted": n_played - recorded - drops - not_published,
    }
    showcase = _showcase(inp, frames)
    publish_s = sorted((t - t_first_pub) / 1e9 for t in inp.published_ns.values())
    output_s = sorted((t - t_first_pub) / 1e9 for t in received.values())
    return DemoResults(
        frames, mean, latency, accounting, timeline, publish_s, output_s, showcase, {"diagnostics": diag}
    )


def _nearest(stamps: list[tuple[int, int]], target: int) -> int | None:
    if not stamps:
        return None
    return min(stamps, key=lambda s: abs(s[0] - target))[1]


def _showcase(inp: DemoInputs, frames: list[dict]) -> dict:
    """Arrays of the middle published frame: image, sparse input, depth, confidence, GT, cloud."""
    if not frames:
        return {}
    stamp = frames[len(frames) // 2]["stamp_ns"]
    show: dict = {"stamp_ns": stamp}
    with rb.open_bag(inp.output_bag) as reader:
        for topic, msgtype, _, raw in rb.iter_messages(reader, inp.output_bag, [DEPTH, CONFIDENCE, CLOUD]):
            if rb.header_stamp_ns(raw) != stamp:
                continue
            msg = rb.deserialize(raw, msgtype)
            if topic == CLOUD:
                names = [f.name for f in msg.fields]
                xyz = pointcloud2_to_arrays(msg).xyz
                finite = np.isfinite(xyz).all(axis=1)  # an organized cloud keeps NaN for "no depth"
                show["cloud_xyz"] = xyz[finite]
                if "rgb" in names:
                    show["cloud_rgb"] = unpack_rgb(pointcloud2_view(msg)["rgb"].reshape(-1))[finite]
            elif topic == DEPTH:
                show[topic] = image_to_depth(msg)
            else:
                show[topic] = image_to_numpy(msg).astype(np.float32)
    # Input side: the image with this stamp, its CameraInfo, and the scan nearest in time.
    scans: list[tuple[int, int]] = []
    wanted = [inp.image_topic, inp.info_topic, inp.points_topic]
    with rb.open_bag(inp.input_bag) as reader:
        index = 0
        for topic, _, _, raw in rb.iter_messages(reader, inp.input_bag, wanted):
            s = rb.header_stamp_ns(raw)
            if topic == inp.points_topic:
                scans.append((s, index))
            index += 1
        best = _nearest(scans, stamp)
        index = 0
        for topic, msgtype, _, raw in rb.iter_messages(reader, inp.input_bag, wanted):
            s = rb.header_stamp_ns(raw)
            if topic == inp.image_topic and s == stamp:
                try:
                    show["image"] = image_to_rgb(rb.deserialize(raw, msgtype))
                except ConversionError:  # e.g. a depth-only camera: no image panel
                    show["image"] = None
            elif topic == inp.info_topic and s == stamp:
                info = rb.deserialize(raw, msgtype)
                show["camera"] = camera_info_to_model(info, inp.camera_model, inp.image_topic)
            elif topic == inp.points_topic and index == best:
                show["scan"] = pointcloud2_to_arrays(rb.deserialize(raw, msgtype)).xyz
            index += 1
    if "scan" in show and "camera" in show:
        show["sparse"] = scan_to_depth(
            show["scan"], inp.T_cam_lidar, show["camera"], on_nonfinite="drop"
        ).depth
    if inp.ground_truth is not None:
        show["gt"] = inp.ground_truth(stamp)
    return show


# ---------------------------------------------------------------------------------------------- figures
def latency_figure(path: Path, latency_ms: np.ndarray, node_p50: tuple[str, float] | None) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 3.6), constrained_layout=True)
    if latency_ms.size:
        ax.hist(latency_ms, bins=max(5, min(40, latency_ms.size)), color="#4477aa", edgecolor="white")
        for q, ls in ((50, "-"), (90, "--"), (99, ":")):
            v = np.percentile(latency_ms, q)
            ax.axvline(v, color="k", ls=ls, lw=1, label=f"p{q} {v:.0f} ms")
    if node_p50 is not None and np.isfinite(node_p50[1]):
        ax.axvline(node_p50[1], color="#cc6677", lw=1.5, label=f"{node_p50[0]} {node_p50[1]:.0f} ms")
    ax.set_xlabel("image published -> depth received (ms)")
    ax.set_ylabel("frames")
    ax.set_title("end-to-end latency (player -> node -> recorder, 3 processes)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def timeline_figure(path: Path, res: DemoResults) -> None:
    fig, ax = plt.subplots(figsize=(8, 2.8), constrained_layout=True)
    levels = {m: i for i, m in enumerate(MODES)}
    if res.timeline:
        t = [x for x, _ in res.timeline]
        y = [levels.get(m, len(MODES)) for _, m in res.timeline]
        ax.step(t, y, where="post", color="#228833", lw=2, label="mode (/diagnostics)")
    ax.plot(res.publish_s, [-0.6] * len(res.publish_s), "|", color="#4477aa", ms=10, label="image published")
    ax.plot(res.output_s, [-0.9] * len(res.output_s), "|", color="#ee6677", ms=10, label="depth received")
    ax.set_yticks(list(levels.values()) + [len(MODES)])
    ax.set_yticklabels(list(MODES) + ["?"])
    ax.set_ylim(-1.2, len(MODES) + 0.5)
    ax.set_xlabel("time since the first image (s)")
    ax.set_title("mode timeline")
    ax.legend(fontsize=7, loc="upper right", ncol=3)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render_cloud(
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    width: int = 960,
    height: int = 480,
    back_m: float = 9.0,
    up_m: float = 5.0,
    pitch_deg: float = 18.0,
) -> np.ndarray:
    """Render a camera-frame cloud (z forward, y down) from a virtual camera behind and above the real one.

    Z-buffered point splats (2 x 2 px): points are drawn far to near, so a nearer point overwrites a
    farther one at the same pixel (numpy fancy assignment keeps the last write). Returns H x W x 3 uint8.
    """
    ok = np.all(np.isfinite(xyz), axis=1)
    xyz = xyz[ok].astype(np.float64)
    colors = rgb[ok] if rgb is not None else None
    a = np.deg2rad(pitch_deg)
    R = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])  # pitch down
    p = (xyz - np.array([0.0, -up_m, -back_m])) @ R.T
    f = 0.8 * width
    front = p[:, 2] > 0.5
    p = p[front]
    u = np.round(f * p[:, 0] / p[:, 2] + width / 2).astype(np.int64)
    v = np.round(f * p[:, 1] / p[:, 2] + 0.62 * height).astype(np.int64)
    if colors is None:
        z = xyz[front, 2]
        colors = (
            plt.get_cmap("turbo")(np.clip(z / max(np.percentile(z, 98), 1e-3), 0, 1))[:, :3] * 255
        ).astype(np.uint8)
    else:
        colors = colors[front]
    order = np.argsort(-p[:, 2])  # far first, near last (last write wins)
    img = np.full((height, width, 3), 24, np.uint8)
    for du in (0, 1):
        for dv in (0, 1):
            uu, vv = u[order] + du, v[order] + dv
            inside = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
            img[vv[inside], uu[inside]] = colors[order][inside]
    return img


def cloud_figure(path: Path, xyz: np.ndarray, rgb: np.ndarray | None) -> None:
    """The published cloud rendered from 9 m behind / 5 m above the camera, plus a bird's-eye view."""
    ok = np.all(np.isfinite(xyz), axis=1)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [2, 1]}, constrained_layout=True
    )
    ax1.imshow(render_cloud(xyz, rgb))
    ax1.set_title("/depth/points seen from 9 m behind, 5 m above the camera", fontsize=9)
    ax1.axis("off")
    pts = xyz[ok]
    c = rgb[ok] / 255.0 if rgb is not None else None
    ax2.scatter(pts[:, 0], pts[:, 2], c=c, s=0.3, linewidths=0)
    ax2.set_xlabel("x right (m)")
    ax2.set_ylabel("z forward (m)")
    ax2.set_aspect("equal")
    if len(pts):
        ax2.set_ylim(0, min(80.0, float(np.percentile(pts[:, 2], 99))))
    ax2.set_title(f"bird's-eye view ({len(pts)} points)", fontsize=9)
    ax2.set_facecolor("#181818")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def per_frame_figure(path: Path, frames: list[dict]) -> None:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 4.6), sharex=True, constrained_layout=True)
    idx = np.arange(len(frames))
    if any("mae_mm" in f for f in frames):
        for key in ("mae_mm", "rmse_mm"):
            ax1.plot(idx, [f.get(key, np.nan) for f in frames], marker="o", ms=3, label=key)
        ax1.set_ylabel("mm")
        ax1.legend(fontsize=8)
    else:
        ax1.plot(idx, [f["valid_fraction"] for f in frames], marker="o", ms=3, label="valid fraction")
        ax1.set_ylabel("fraction of pixels with depth")
    ax1.grid(alpha=0.3)
    ax2.bar(idx, [f.get("latency_ms", np.nan) for f in frames], color="gray")
    ax2.set_ylabel("latency (ms)")
    ax2.set_xlabel("published frame")
    ax2.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- report
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
    lat = _percentiles(res.latency_ms)
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
<p>Published <code>/depth/image</code> against the exact ground truth, KITTI devkit metrics (holes background-filled) on
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
