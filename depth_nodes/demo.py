"""``depth-nodes demo``: the main job, end to end, in three real ROS 2 processes.

1. Generate (or reuse) the default synthetic KITTI-like drive (``data.synthetic.write_drive``).
2. Convert it to a rosbag2 with ``kitti2bag`` (or take ``--bag PATH``, a user's KITTI bag).
3. Start the depth node in its own process (remapped to the KITTI topics; extrinsics from the bag's
   ``/tf_static`` passed as parameters, so no tf2_ros is needed), and ``depth-nodes record`` in another.
4. Play the bag at recorded timing into the node (this process), wait until every image is accounted for
   in the node's ``/diagnostics`` (published, dropped or not published), stop the recorder (SIGINT: the
   bag is closed cleanly) and the node.
5. Read the recorded bag back, score ``/depth/image_rect`` against the exact ground truth, and write the report
   (HTML + PNGs) and a one-screen summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depth_nodes import resources
from depth_nodes.data import kitti2bag as k2b
from depth_nodes.data import rosbag_io as rb
from depth_nodes.demo_run import DemoError, _log, run_pipeline
from depth_nodes.errors import DepthNodesError

if TYPE_CHECKING:
    pass

DEFAULT_FRAMES = 20
DEFAULT_SEED = 0
#: The default drive stands still from 0.75 to 1.55 s (frames 8-15) and the LiDAR is withheld for frames
#: 10-13: without odometry TF (a pip install has no tf2_ros) the node bridges it from its LiDAR memory only
#: while the robot is known still (docs/lidar_memory.md). Drives shorter than 16 frames have no dropout.
EGO_STOP_S = (0.75, 1.55)
DROPOUT_FRAMES = (10, 13)


# ---------------------------------------------------------------------------------------------- inputs
def dropout_of(frames: int, enabled: bool = True):
    """``(ego_stop_s, skip_points(stamp_ns))`` of the default drive's LiDAR dropout, or ``(None, None)``."""
    from depth_nodes.data.synthetic import BASE_STAMP_NS, FRAME_PERIOD_NS

    if not enabled or frames <= DROPOUT_FRAMES[1] + 2:
        return None, None
    lo = BASE_STAMP_NS + DROPOUT_FRAMES[0] * FRAME_PERIOD_NS - FRAME_PERIOD_NS // 2
    hi = BASE_STAMP_NS + DROPOUT_FRAMES[1] * FRAME_PERIOD_NS + FRAME_PERIOD_NS // 2
    return EGO_STOP_S, lambda stamp_ns: lo <= stamp_ns < hi


def prepare_synthetic(
    out: Path, frames: int, seed: int, storage: str, ego_stop_s: tuple[float, float] | None = None
) -> tuple[Path, Path]:
    """Synthetic drive (reused when complete) and its bag; returns ``(data_dir, bag)``."""
    from depth_nodes.data.synthetic import is_complete, raw_drive_dir, write_drive

    data = out / "synthetic"
    reused = is_complete(data, seed, frames, ego_stop_s=ego_stop_s)
    t0 = time.perf_counter()
    write_drive(data, seed=seed, n_frames=frames, ego_stop_s=ego_stop_s)
    _log(f"[1/5] synthetic drive: {'reused' if reused else 'generated'} {frames} frames (seed {seed}) "
         f"in {time.perf_counter() - t0:.1f} s -> {data}")  # fmt: skip
    bag = out / "input_bag"
    t0 = time.perf_counter()
    k2b.convert(k2b.load_drive(raw_drive_dir(data)), bag, storage, overwrite=True, progress=False)
    _log(f"[2/5] kitti2bag: {bag} ({storage}) in {time.perf_counter() - t0:.1f} s")
    return data, bag


def ground_truth_lookup(data: Path):
    """image stamp (ns) -> full-size GT depth (m, 0 = none) from the synthetic depth-completion layout."""
    from depth_nodes.data.kitti_depth import crop_bottom_centre, read_depth_png
    from depth_nodes.data.kitti_raw import RawDrive
    from depth_nodes.data.synthetic import DC_DIR, raw_drive_dir

    raw = RawDrive(raw_drive_dir(data))
    index = {int(s): i for i, s in enumerate(raw.image_stamps_ns)}
    drive = raw.path.name
    cam = raw.camera()

    def lookup(stamp_ns: int) -> np.ndarray | None:
        i = index.get(int(stamp_ns))
        if i is None:
            return None
        gt_crop = read_depth_png(
            data / DC_DIR / "groundtruth_depth" / f"{drive}_groundtruth_depth_{i:010d}_image_02.png"
        )
        full = np.zeros(cam.shape, np.float32)
        x0, y0 = crop_bottom_centre(cam.shape)
        full[y0 : y0 + gt_crop.shape[0], x0 : x0 + gt_crop.shape[1]] = gt_crop
        return full

    return lookup


def bag_geometry(bag: Path, image_topic: str, info_topic: str, points_topic: str) -> dict:
    """Check the input bag's topics/types and find ``T_cam_lidar`` from its ``/tf_static``."""
    summary = rb.read_summary(bag)
    if summary.message_count == 0:
        raise rb.BagError(f"bag {bag} is empty (no messages)")
    summary.require_topic(image_topic, "sensor_msgs/msg/Image")
    summary.require_topic(info_topic, "sensor_msgs/msg/CameraInfo")
    summary.require_topic(points_topic, "sensor_msgs/msg/PointCloud2")
    summary.require_topic("/tf_static", "tf2_msgs/msg/TFMessage")
    frames: dict[str, str] = {}
    with rb.open_bag(bag) as reader:
        for topic, _, _, raw in rb.iter_messages(reader, bag, [info_topic, points_topic]):
            if topic not in frames:
                frames[topic] = rb.deserialize(raw, summary.topics[topic].msgtype).header.frame_id
            if len(frames) == 2:
                break
        transforms = rb.read_static_transforms(reader, bag)
    cam_frame, lidar_frame = frames[info_topic], frames[points_topic]
    T = rb.lookup_transform(transforms, cam_frame, lidar_frame)
    return {
        "summary": summary,
        "camera_frame": cam_frame,
        "lidar_frame": lidar_frame,
        "T_cam_lidar": T,
        "n_images": summary.topics[image_topic].count,
    }


# ---------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("depth_nodes_demo"), help="output directory"
    )
    parser.add_argument(
        "--frames", type=int, default=None,
        help=f"synthetic drive length (default {DEFAULT_FRAMES} frames at 10 Hz); with --bag: play only the first N images",
    )  # fmt: skip
    parser.add_argument(
        "--bag", type=Path, default=None, help="run on this KITTI rosbag2 instead (no ground truth)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="synthetic drive seed")
    parser.add_argument(
        "--storage", choices=sorted(rb.STORAGE_SUFFIX), default="mcap", help="input bag storage"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--image-topic", default=k2b.IMAGE_TOPIC)
    parser.add_argument("--camera-info-topic", default=k2b.INFO_TOPIC)
    parser.add_argument("--points-topic", default=k2b.POINTS_TOPIC)
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="limit for each waiting step (s)"
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="play at recorded timing only, no flow control: a node slower than the playback drops frames "
        "(and the demo then fails, naming them)",
    )
    parser.add_argument(
        "--transport",
        choices=[*sorted(resources.FASTDDS_PROFILES), "default"],
        default="shm",
        help="Fast DDS profile of the node, recorder and player: shm (64 MB shared-memory segment, default), "
        "udp (the multi-host UDPv4 profile), default (Fast DDS's built-ins)",
    )
    parser.add_argument("--no-shm", action="store_true", help="same as --transport default")
    parser.add_argument(
        "--no-dropout", action="store_true",
        help=f"synthetic drive: no LiDAR dropout (default: scans of frames {DROPOUT_FRAMES[0]}-{DROPOUT_FRAMES[1]} "
        "withheld while the car stands still; the node bridges them from its LiDAR memory)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from depth_nodes.eval import demo_bags, demo_report

    t_start = time.perf_counter()
    if args.frames is not None and args.frames < 1:
        raise DepthNodesError(f"--frames must be >= 1, got {args.frames}")
    if not args.rate > 0:
        raise DepthNodesError(f"--rate must be > 0, got {args.rate}")
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    choice = "default" if args.no_shm else args.transport
    transport = "Fast DDS built-in transports (default)"
    if choice != "default":
        # Before any rclpy.init in this process; the node and the recorder inherit the environment.
        name = {"shm": "Fast DDS shared memory", "udp": "Fast DDS UDPv4"}.get(choice, choice)
        transport = f"{name} ({resources.use_fastdds_profile(choice)})"
    topics = {"image": args.image_topic, "info": args.camera_info_topic, "points": args.points_topic}
    ground_truth = None
    skip_points, dropout = None, ""
    if args.bag is None:
        frames = args.frames or DEFAULT_FRAMES
        ego_stop_s, skip_points = dropout_of(frames, not args.no_dropout)
        data, input_bag = prepare_synthetic(out, frames, args.seed, args.storage, ego_stop_s)
        ground_truth = ground_truth_lookup(data)
        source = f"synthetic drive seed {args.seed}, {frames} frames ({data})"
        max_images = None
        if skip_points is not None:
            dropout = (f"LiDAR withheld for frames {DROPOUT_FRAMES[0]}-{DROPOUT_FRAMES[1]} while the car stands "
                       f"still ({EGO_STOP_S[0]:g}-{EGO_STOP_S[1]:g} s)")  # fmt: skip
    else:
        input_bag = args.bag
        source = f"user bag {input_bag}"
        max_images = args.frames
        _log(f"[1/5] input: {input_bag} (no ground truth: report without error metrics)")
    geom = bag_geometry(input_bag, topics["image"], topics["info"], topics["points"])
    if args.bag is not None:
        _log(f"[2/5] extrinsics {geom['lidar_frame']} -> {geom['camera_frame']} from /tf_static")
    result = run_pipeline(input_bag, out, geom, topics, args.rate, max_images, args.timeout, args.realtime,
                          skip_points)  # fmt: skip

    inputs = demo_bags.DemoInputs(
        input_bag=input_bag,
        output_bag=result["output_bag"],
        image_topic=topics["image"],
        info_topic=topics["info"],
        points_topic=topics["points"],
        T_cam_lidar=geom["T_cam_lidar"],
        published_ns=result["published_ns"],
        ground_truth=ground_truth,
        final_diagnostics=result["diagnostics"],
    )
    res = demo_bags.evaluate(inputs, progress=False)
    out_summary = rb.read_summary(result["output_bag"])
    diag = res.summary["diagnostics"]
    meta = {
        "input": source,
        "input bag": f"{input_bag} ({geom['summary'].storage}, {geom['summary'].message_count} messages)",
        "output bag": f"{result['output_bag']} ({out_summary.storage}, {out_summary.message_count} messages)",
        "estimator": diag.get("estimator", "?"),
        "extrinsics": f"{geom['lidar_frame']} -> {geom['camera_frame']} from /tf_static, passed as parameters",
        "transport": transport,
        "flow control": result["flow_control"],
        "machine": f"{os.cpu_count()} CPUs, {sys.platform}",
    }
    if dropout:
        meta["dropout"] = (f"{dropout}: {diag.get('memory_frames', '0')} frames published from the LiDAR memory "
                           f"({diag.get('memory_odometry', '?')})")  # fmt: skip
    report = demo_report.write_report(out / "report", res, meta)
    meta["total time"] = f"{time.perf_counter() - t_start:.1f} s"
    _log(f"[5/5] report: {report}")
    _print_summary(res, meta, report)
    problems = failures(res.accounting, res.summary["diagnostics"], out / "logs" / "node.log")
    if problems:
        raise DemoError("not every played frame was published:\n  " + "\n  ".join(problems))
    _log(f"PASS: {res.accounting['played']} played, {res.accounting['published']} published, 0 unaccounted")
    return 0


def failures(acc: dict, diag: dict[str, str], node_log: Path) -> list[str]:
    """Why a run is not a pass, one line per cause; empty when every played frame was published."""
    out = []
    if acc["played"] == 0:
        out.append("no image was played")
    if acc["dropped"]:
        stages = ", ".join(
            f"{k[len('stage_') : -len('_p50_ms')]} {float(v):.0f}"
            for k, v in diag.items()
            if k.startswith("stage_")
        )
        out.append(
            f"{acc['dropped']} frame(s) dropped in the node's one-slot mailbox: the node was slower than the "
            f"playback (stage p50 ms: {stages or '?'}); run without --realtime, or with a lower --rate"
        )
    if acc["not_published"]:
        out.append(
            f"{acc['not_published']} frame(s) not published by the node; its last reason: "
            f"{diag.get('last_not_published_reason') or '?'} (mode {diag.get('mode', '?')}; log {node_log})"
        )
    if acc["unaccounted"] > 0:
        out.append(
            f"{acc['unaccounted']} frame(s) neither published nor counted by the node: lost in transport or "
            f"rejected in its callbacks ({acc['rejected_messages_in_callbacks']} rejected messages; "
            f"the node took in {acc['received_by_node']}; log {node_log})"
        )
    elif acc["unaccounted"] < 0:
        out.append(f"the node's counts exceed the played frames: {acc}")
    if acc["played"] and acc["published"] == 0 and not out:
        out.append(f"the node published no depth image; see {node_log}")
    return out


def _print_summary(res, meta: dict, report: Path) -> None:
    from depth_nodes.eval.demo_bags import percentiles

    acc = res.accounting
    lat = percentiles(res.latency_ms)
    modes: dict[str, int] = {}
    t_end = max(res.output_s + res.publish_s, default=0.0)
    during = [m for t, m in res.timeline if 0.0 <= t <= t_end]  # while frames were flowing
    for m in during:
        modes[m] = modes.get(m, 0) + 1
    mode_txt = ", ".join(f"{m} {100 * n / len(during):.0f} %" for m, n in modes.items()) or "?"
    lines = [
        "",
        f"depth-nodes demo finished in {meta['total time']}",
        f"  input     {meta['input']}",
        f"  bags      in: {meta['input bag']}",
        f"            out: {meta['output bag']}",
        f"  node      estimator {meta['estimator']}; modes while frames flowed: {mode_txt}",
        f"  playback  flow control {meta['flow control']}",
        f"  frames    {acc['played']} played: {acc['published']} published, {acc['dropped']} dropped, "
        f"{acc['not_published']} not published, {acc['unaccounted']} unaccounted",
    ]
    if meta.get("dropout"):
        lines.append(f"  fallback  {meta['dropout']}")
    if res.mean:
        m = res.mean
        lines.append(
            f"  accuracy  MAE {m['mae_mm']:.0f} mm, RMSE {m['rmse_mm']:.0f} mm, iMAE {m['imae_per_km']:.2f} /km, "
            f"iRMSE {m['irmse_per_km']:.2f} /km, AbsRel {m['absrel']:.3f}, d<1.25 {m['delta1']:.3f} "
            f"(exact GT, 1216x352 crop, {m['n_frames']} frames)"
        )
    else:
        lines.append("  accuracy  no ground truth (user bag): not scored")
    lines.append(
        f"  latency   image published -> depth recorded: p50 {lat['p50']:.0f} ms, p90 {lat['p90']:.0f} ms, "
        f"p99 {lat['p99']:.0f} ms"
    )
    lines.append(f"  report    {report.resolve()}")
    _log("\n".join(lines))
