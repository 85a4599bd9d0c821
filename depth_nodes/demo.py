"""``depth-nodes demo``: the main job, end to end, in three real ROS 2 processes.

1. Generate (or reuse) the default synthetic KITTI-like drive (``data.synthetic.write_drive``).
2. Convert it to a rosbag2 with ``kitti2bag`` (or take ``--bag PATH``, a user's KITTI bag).
3. Start the depth node in its own process (remapped to the KITTI topics; extrinsics from the bag's
   ``/tf_static`` passed as parameters, so no tf2_ros is needed), and ``depth-nodes record`` in another.
4. Play the bag at recorded timing into the node (this process), wait until every image is accounted for
   in the node's ``/diagnostics`` (published, dropped or not published), stop the recorder (SIGINT: the
   bag is closed cleanly) and the node.
5. Read the recorded bag back, score ``/depth/image`` against the exact ground truth, and write the report
   (HTML + PNGs) and a one-screen summary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depth_nodes import resources
from depth_nodes.data import kitti2bag as k2b
from depth_nodes.data import rosbag_io as rb
from depth_nodes.errors import DepthNodesError

if TYPE_CHECKING:
    from depth_nodes.ros.diagnostics_monitor import Monitor

DEFAULT_FRAMES = 20
DEFAULT_SEED = 0


class DemoError(DepthNodesError):
    """A demo stage failed (the message names the stage and where its log is)."""


def _log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------- inputs
def prepare_synthetic(out: Path, frames: int, seed: int, storage: str) -> tuple[Path, Path]:
    """Synthetic drive (reused when complete) and its bag; returns ``(data_dir, bag)``."""
    from depth_nodes.data.synthetic import is_complete, raw_drive_dir, write_drive

    data = out / "synthetic"
    reused = is_complete(data, seed, frames)
    t0 = time.perf_counter()
    write_drive(data, seed=seed, n_frames=frames)
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


# ---------------------------------------------------------------------------------------------- processes
def _count(diag: dict[str, str], key: str) -> int:
    try:
        return int(float(diag.get(key, "0")))
    except ValueError:
        return 0


def accounted(diag: dict[str, str]) -> int:
    """Images the node has finished with: published, dropped (mailbox) or not published (with a reason)."""
    return _count(diag, "frames_published") + _count(diag, "drops") + _count(diag, "frames_not_published")


def finished(monitor: Monitor, played: int, settle_s: float = 3.0) -> bool:
    """True when the node has finished every frame it took in and took in every played image.

    An image the node rejects in its callback (bad encoding, no CameraInfo, ...) never enters its
    mailbox: once the counts have not moved for ``settle_s`` with nothing in flight, the rest is final
    (those images show up as unaccounted, with the node's ``rejected_messages`` count in the report).
    """
    _, diag = monitor.latest()
    frames_in, done = _count(diag, "frames_in"), accounted(diag)
    if done < frames_in:
        return False
    if frames_in >= played:
        return True
    key = (frames_in, done)
    now = time.monotonic()
    if monitor._settle_key != key:
        monitor._settle_key, monitor._settle_since = key, now
    return now - monitor._settle_since >= settle_s


def _wait(cond, timeout: float, what: str, alive=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _start_recorder(out_bag: Path, log_path: Path, env: dict) -> subprocess.Popen:
    from depth_nodes.eval.demo_report import OUTPUT_TOPICS

    log = open(log_path, "w")  # noqa: SIM115 - the process owns it until it exits
    return subprocess.Popen(
        [sys.executable, "-m", "depth_nodes.cli", "record", "-o", str(out_bag), *OUTPUT_TOPICS],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def node_params(geom: dict) -> dict:
    return {
        # The player publishes reliably: reliable subscriptions mean no frame is lost in transport, so
        # every image is accounted for by the node itself (published, dropped or not published).
        "image_qos_reliability": "reliable",
        "camera_info_qos_reliability": "reliable",
        "points_qos_reliability": "reliable",
        "extrinsics_source": "parameters",
        "lidar_to_camera_matrix": [float(v) for v in np.asarray(geom["T_cam_lidar"]).ravel()],
        "lidar_frame": geom["lidar_frame"],
        "diagnostics_period_s": 0.25,
        # Bag playback on a loaded machine can delay callbacks: count the camera as stale only after 2 s,
        # so the end of the bag does not turn into LiDAR-driven frames (which are not input images).
        "max_image_age_s": 2.0,
    }


def run_pipeline(
    input_bag: Path,
    out: Path,
    geom: dict,
    topics: dict[str, str],
    rate: float,
    max_images: int | None,
    timeout_s: float,
) -> dict:
    """Node + recorder + player; returns what the report needs (publish times, diagnostics, paths)."""
    from depth_nodes.ros.bag_play import play
    from depth_nodes.ros.node_harness import NodeProcess

    out_bag = out / "output_bag"
    for stale in (out_bag, out / "output_bag.partial"):
        if stale.exists():
            shutil.rmtree(stale)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The shipped defaults, then the KITTI preset, then the demo's own values (later files win).
    params_files = resources.node_params_files()
    remaps = [
        "-r",
        f"image:={topics['image']}",
        "-r",
        f"camera_info:={topics['info']}",
        "-r",
        f"points:={topics['points']}",
    ]
    node = NodeProcess(params=node_params(geom), env=env, extra_ros_args=remaps, params_files=params_files)
    rec_log = out / "logs" / "recorder.log"
    rec_log.parent.mkdir(parents=True, exist_ok=True)
    recorder = None
    monitor = None
    published: dict[int, int] = {}
    try:
        node.start()
        recorder = _start_recorder(out_bag, rec_log, env)
        from depth_nodes.ros.diagnostics_monitor import Monitor

        monitor = Monitor()

        def alive() -> None:
            if not node.alive():
                raise DemoError(
                    f"the depth node exited (code {node.proc.returncode}):\n{node.output()[-2500:]}"
                )
            if recorder.poll() is not None:
                raise DemoError(f"the recorder exited (code {recorder.returncode}); log: {rec_log}")

        from depth_nodes.eval.demo_report import OUTPUT_TOPICS

        _wait(
            lambda: rec_log.read_text().count("record: subscribed to") >= len(OUTPUT_TOPICS),
            timeout_s,
            f"the recorder to subscribe to the node's outputs (log {rec_log})",
            alive,
        )
        _log(f"[3/5] depth node (pid {node.pid}) and recorder (pid {recorder.pid}) running")
        stop = threading.Event()
        n_images = [0]

        def on_publish(topic: str, _t: int, raw: bytes, wall_ns: int) -> None:
            if topic == topics["image"]:
                published[rb.header_stamp_ns(raw)] = wall_ns
                n_images[0] += 1
                if max_images is not None and n_images[0] >= max_images:
                    stop.set()

        play_topics = [topics["image"], topics["info"], topics["points"]]
        t0 = time.perf_counter()
        stats = play(
            input_bag, rate=rate, topics=play_topics, wait_for_subscribers_s=timeout_s, stop=stop,
            progress=False, on_publish=on_publish,
        )  # fmt: skip
        _log(
            f"[4/5] played {stats.total} messages ({len(published)} images) in {time.perf_counter() - t0:.1f} s"
        )
        _wait(lambda: finished(monitor, len(published)), timeout_s, "the node to finish every frame", alive)
        n_seen, _ = monitor.latest()
        _wait(lambda: monitor.latest()[0] > n_seen + 1, 5.0, "a final /diagnostics message", alive)
        final_diag = monitor.latest()[1]
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise DemoError(f"the recorder did not stop within {timeout_s:.0f} s (log {rec_log})") from exc
        if recorder.returncode != 0:
            raise DemoError(f"the recorder failed (code {recorder.returncode}); log: {rec_log}")
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
            recorder.wait(5)
        if monitor is not None:
            monitor.close()
        node_code = node.stop()
        (out / "logs" / "node.log").write_text(node.output())
        node.cleanup()
    if node_code not in (0, -signal.SIGINT, None):
        _log(f"warning: the depth node exited with code {node_code} (log {out / 'logs' / 'node.log'})")
    return {"output_bag": out_bag, "published_ns": published, "diagnostics": final_diag}


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
        "--no-shm",
        action="store_true",
        help="use Fast DDS's default UDP loopback instead of the shipped shared-memory profile (depth_nodes/config/fastdds_shm.xml)",
    )


def run(args: argparse.Namespace) -> int:
    from depth_nodes.eval import demo_report as dr

    t_start = time.perf_counter()
    if args.frames is not None and args.frames < 1:
        raise DepthNodesError(f"--frames must be >= 1, got {args.frames}")
    if not args.rate > 0:
        raise DepthNodesError(f"--rate must be > 0, got {args.rate}")
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    transport = "UDP loopback (Fast DDS default)"
    if not args.no_shm:
        from depth_nodes.ros.node_main import use_shm_transport

        # Before any rclpy.init in this process; the node and the recorder inherit the environment.
        transport = f"Fast DDS shared memory ({use_shm_transport()})"
    topics = {"image": args.image_topic, "info": args.camera_info_topic, "points": args.points_topic}
    ground_truth = None
    if args.bag is None:
        frames = args.frames or DEFAULT_FRAMES
        data, input_bag = prepare_synthetic(out, frames, args.seed, args.storage)
        ground_truth = ground_truth_lookup(data)
        source = f"synthetic drive seed {args.seed}, {frames} frames ({data})"
        max_images = None
    else:
        input_bag = args.bag
        source = f"user bag {input_bag}"
        max_images = args.frames
        _log(f"[1/5] input: {input_bag} (no ground truth: report without error metrics)")
    geom = bag_geometry(input_bag, topics["image"], topics["info"], topics["points"])
    if args.bag is not None:
        _log(f"[2/5] extrinsics {geom['lidar_frame']} -> {geom['camera_frame']} from /tf_static")
    result = run_pipeline(input_bag, out, geom, topics, args.rate, max_images, args.timeout)

    inputs = dr.DemoInputs(
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
    res = dr.evaluate(inputs, progress=False)
    out_summary = rb.read_summary(result["output_bag"])
    diag = res.summary["diagnostics"]
    meta = {
        "input": source,
        "input bag": f"{input_bag} ({geom['summary'].storage}, {geom['summary'].message_count} messages)",
        "output bag": f"{result['output_bag']} ({out_summary.storage}, {out_summary.message_count} messages)",
        "estimator": diag.get("estimator", "?"),
        "extrinsics": f"{geom['lidar_frame']} -> {geom['camera_frame']} from /tf_static, passed as parameters",
        "transport": transport,
        "machine": f"{os.cpu_count()} CPUs, {sys.platform}",
    }
    report = dr.write_report(out / "report", res, meta)
    meta["total time"] = f"{time.perf_counter() - t_start:.1f} s"
    _log(f"[5/5] report: {report}")
    _print_summary(res, meta, report)
    acc = res.accounting
    if acc["unaccounted"] != 0:
        raise DemoError(
            f"{acc['unaccounted']} input frame(s) neither published nor counted by the node: {acc}"
        )
    if acc["published"] == 0:
        raise DemoError(f"the node published no depth image; see {out / 'logs' / 'node.log'}")
    return 0


def _print_summary(res, meta: dict, report: Path) -> None:
    from depth_nodes.eval.demo_report import _percentiles

    acc = res.accounting
    lat = _percentiles(res.latency_ms)
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
        f"  frames    {acc['played']} played: {acc['published']} published, {acc['dropped']} dropped, "
        f"{acc['not_published']} not published, {acc['unaccounted']} unaccounted",
    ]
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
