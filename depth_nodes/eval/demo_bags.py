"""Reading a ``depth-nodes demo`` run back from its two bags (input, recorded output) and scoring it.

Reads everything back from the bags with ``rosbags`` (what a user could do with any recording):
the published ``/depth/image_rect`` of every frame is scored against ground truth (when there is some) with the
KITTI devkit metrics of :mod:`depth_nodes.eval.metrics` on the 1216 x 352 bottom-centre crop; end-to-end
latency is the recorder's reception time of each depth image minus the player's publish time of its input
image (same host clock); the mode timeline comes from the recorded ``/diagnostics``. The figures are drawn by
:mod:`depth_nodes.eval.demo_figures`, the HTML page is assembled by :mod:`depth_nodes.eval.demo_report`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_nodes.core.projection import scan_to_depth
from depth_nodes.data import rosbag_io as rb
from depth_nodes.data.kitti_depth import crop_bottom_centre
from depth_nodes.errors import ConversionError
from depth_nodes.eval.metrics import depth_metrics, mean_metrics
from depth_nodes.msgs.camera_info import info_geometry
from depth_nodes.msgs.cloud import pointcloud2_to_arrays, pointcloud2_view, unpack_rgb
from depth_nodes.msgs.image import image_to_depth, image_to_numpy, image_to_rgb

DEPTH = "/depth/image_rect"
CONFIDENCE = "/depth/confidence"
COLORIZED = "/depth/colorized"
CLOUD = "/depth/points"
DEPTH_INFO = "/depth/camera_info"
DIAGNOSTICS = "/diagnostics"
OUTPUT_TOPICS = (DEPTH, CONFIDENCE, COLORIZED, CLOUD, DEPTH_INFO, DIAGNOSTICS)
MODES = ("guided", "lidar_memory", "lidar_only", "monocular", "none")

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
    depth_geometry: str = "rectified"  # the node's depth_geometry parameter: the geometry it publishes in


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


def percentiles(values: np.ndarray) -> dict[str, float]:
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
    rectifier = None
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
                # the published geometry: a raw camera's image and scan as the node rectified them
                geometry = info_geometry(info, inp.camera_model, inp.image_topic, None, inp.depth_geometry)
                show["camera"], rectifier = geometry.camera, geometry.rectifier
            elif topic == inp.points_topic and index == best:
                show["scan"] = pointcloud2_to_arrays(rb.deserialize(raw, msgtype)).xyz
            index += 1
    if rectifier is not None and show.get("image") is not None:
        show["image"] = rectifier.rectify(show["image"])
    if "scan" in show and "camera" in show:
        show["sparse"] = scan_to_depth(
            show["scan"], inp.T_cam_lidar, show["camera"], on_nonfinite="drop"
        ).depth
    if inp.ground_truth is not None:
        show["gt"] = inp.ground_truth(stamp)
    return show
