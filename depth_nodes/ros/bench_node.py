"""``depth-nodes bench node``: the depth node in its own process, fed a synthetic drive at fixed rates.

Frames of a synthetic KITTI-like drive are rendered first (``data.synthetic.generate_drive``, cropped to
the KITTI depth-completion size 1216x352 like ``val_selection_cropped``), turned into messages once, then
published with fresh stamps at each rate (camera at ``--rate``, LiDAR at ``min(rate, --lidar-rate)``)
into a node started per (transport, rate) run with the shipped ``depth_nodes.yaml`` + ``kitti.yaml``.
Measured per run: end-to-end latency (image stamp -> ``depth/image`` received here, so it includes both
transports) p50/p90/p99, the node's own stamp -> publish latency and stage times (from /diagnostics),
frames sent / published / dropped (node mailbox) / lost (never published), CPU % and peak RSS of the
node process (psutil). Transports: ``udp`` (Fast DDS UDPv4 only), ``shm`` (fastdds_shm.xml,
64 MB shared-memory segment), ``default`` (Fast DDS built-ins: 512 KB shared memory + UDP).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from depth_nodes import resources
from depth_nodes.errors import DepthNodesError

TRANSPORT_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS")
CAMERA_FRAME, LIDAR_FRAME = "camera_color_left", "velo_link"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, nargs="+", default=[10.0, 30.0], help="camera rates, Hz")
    parser.add_argument(
        "--lidar-rate", type=float, default=10.0, help="LiDAR rate cap, Hz (a spinning LiDAR)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds fed before measuring")
    parser.add_argument(
        "--transport",
        nargs="+",
        default=["udp", "shm"],
        choices=["udp", "shm", "default"],
        help="DDS transports",
    )
    parser.add_argument("--frames", type=int, default=20, help="distinct synthetic frames (cycled)")
    parser.add_argument("--seed", type=int, default=3, help="synthetic drive seed")
    parser.add_argument("--width", type=int, default=1216, help="image width, px (bottom-centre crop)")
    parser.add_argument("--height", type=int, default=352, help="image height, px")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra node parameter (repeatable)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results table (markdown) here")
    parser.add_argument(
        "--best-effort",
        action="store_true",
        help="keep the node's default best-effort input QoS (default here: reliable inputs, like a bag player)",
    )
    # Internal: one child process per transport (Fast DDS reads its transport settings once per process).
    parser.add_argument("--frames-file", type=Path, default=None, help=argparse.SUPPRESS)


# ------------------------------------------------------------------------------------------ frames
@dataclass
class BenchFrames:
    images: list  # sensor_msgs/Image (rgb8)
    clouds: list  # sensor_msgs/PointCloud2 (x, y, z, intensity)
    info: object  # sensor_msgs/CameraInfo
    n_points: int


def render_frames(n: int, seed: int, width: int, height: int) -> dict[str, np.ndarray]:
    """Render ``n`` synthetic frames cropped bottom-centre to ``width`` x ``height`` (arrays, saveable)."""
    from tqdm import tqdm

    from depth_nodes.data.synthetic import IMAGE_SIZE, generate_drive, synthetic_calib

    full_w, full_h = IMAGE_SIZE
    if width > full_w or height > full_h:
        raise DepthNodesError(f"bench size {width}x{height} exceeds the synthetic camera's {full_w}x{full_h}")
    x0, y0 = (full_w - width) // 2, full_h - height
    camera, _ = synthetic_calib(full_w, full_h)
    camera = camera.crop(x0, y0, width, height)
    out: dict[str, np.ndarray] = {"K": camera.K, "size": np.array([width, height])}
    for i, f in enumerate(
        tqdm(generate_drive(seed, n), total=n, desc="rendering synthetic frames", unit="frame")
    ):
        out[f"image_{i}"] = np.ascontiguousarray(f.image[y0 : y0 + height, x0 : x0 + width])
        out[f"points_{i}"] = np.ascontiguousarray(f.points[:, :4], dtype=np.float32)
    return out


def make_frames(arrays: dict[str, np.ndarray]) -> BenchFrames:
    """Messages (built once; stamps are set at publish time) from :func:`render_frames` arrays."""
    from sensor_msgs.msg import PointCloud2, PointField
    from std_msgs.msg import Header

    from depth_nodes.core.camera import CameraModel
    from depth_nodes.ros import conversions as conv
    from depth_nodes.ros.msg_buffer import set_data

    width, height = (int(v) for v in arrays["size"])
    camera = CameraModel(width, height, arrays["K"])
    fields = [
        PointField(name=c, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, c in enumerate("xyz")
    ]
    fields.append(PointField(name="intensity", offset=12, datatype=PointField.FLOAT32, count=1))
    images, clouds, n_points = [], [], 0
    n = sum(1 for k in arrays if k.startswith("image_"))
    for i in range(n):
        images.append(conv.numpy_to_image(arrays[f"image_{i}"], "rgb8", Header(frame_id=CAMERA_FRAME)))
        pts = arrays[f"points_{i}"]
        msg = PointCloud2(header=Header(frame_id=LIDAR_FRAME), height=1, width=pts.shape[0], fields=fields)
        msg.point_step, msg.row_step, msg.is_dense, msg.is_bigendian = 16, 16 * pts.shape[0], True, False
        set_data(msg, pts)
        clouds.append(msg)
        n_points += pts.shape[0]
    info = conv.model_to_camera_info(camera, Header(frame_id=CAMERA_FRAME))
    return BenchFrames(images, clouds, info, n_points // max(1, n))


# ------------------------------------------------------------------------------------------ one run
@dataclass
class RunResult:
    transport: str
    rate_hz: float
    lidar_rate_hz: float
    seconds: float
    frames_sent: int
    depth_received: int
    lost: int
    node_drops: int
    node_not_published: int
    latency_ms: dict = field(default_factory=dict)  # end to end: stamp -> depth/image received here
    cloud_latency_ms: dict = field(default_factory=dict)  # stamp -> depth/points received here
    node_latency_ms: dict = field(default_factory=dict)  # stamp -> publish, from /diagnostics
    stage_p50_ms: dict = field(default_factory=dict)
    cpu_percent: float = 0.0
    peak_rss_mb: float = 0.0
    output_rate_hz: float = 0.0
    estimator: str = ""
    mode: str = ""


def transport_env(transport: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TRANSPORT_VARS}
    if transport == "udp":
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    elif transport == "shm":
        resources.use_fastdds_profile("shm", env)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


class ProcessSampler:
    """CPU % (average over the run) and peak RSS of a process, sampled on a thread."""

    def __init__(self, pid: int, period_s: float = 0.1) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.period_s = period_s
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ProcessSampler:
        self.t0, self.cpu0 = time.monotonic(), sum(self.proc.cpu_times()[:2])
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            except Exception:  # noqa: BLE001 - the process ended
                return

    def stop(self) -> tuple[float, float]:
        """``(cpu_percent, peak_rss_mb)``; 100 % = one core."""
        cpu = sum(self.proc.cpu_times()[:2]) - self.cpu0
        wall = time.monotonic() - self.t0
        self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
        self._stop.set()
        self._thread.join(1.0)
        return 100.0 * cpu / max(wall, 1e-9), self.peak_rss / 2**20


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    a = np.asarray(values)
    p50, p90, p99 = np.percentile(a, (50, 90, 99))
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max())}


def run_once(frames: BenchFrames, transport: str, rate: float, args, extra_params: dict) -> RunResult:
    from depth_nodes.ros import conversions as conv
    from depth_nodes.ros.node_harness import NodeClient, NodeProcess, check_alive

    env = transport_env(transport)
    proc = NodeProcess(extra_params, env=env, params_files=resources.node_params_files()).start()
    received: dict[int, int] = {}
    clouds: dict[int, int] = {}
    lock = threading.Lock()

    def on_message(topic: str, msg, t_recv_ns: int) -> None:
        if topic in ("depth/image", "depth/points"):
            with lock:
                (received if topic == "depth/image" else clouds)[conv.stamp_to_ns(msg.header.stamp)] = (
                    t_recv_ns
                )

    saved = {k: os.environ.get(k) for k in TRANSPORT_VARS}
    os.environ.update({k: env[k] for k in TRANSPORT_VARS if k in env})
    for k in TRANSPORT_VARS:
        if k not in env:
            os.environ.pop(k, None)
    client = None
    try:
        client = NodeClient(
            "depth_node_bench", outputs=("depth/image", "depth/points"), reliable_inputs=True, keep=False,
            on_message=on_message, input_depth=2,
        )  # fmt: skip
        client.wait_matched(60.0)
        sampler = None
        period = 1.0 / rate
        lidar_every = max(1, round(rate / min(rate, args.lidar_rate)))
        n_warm = int(round(args.warmup * rate))
        n_total = n_warm + int(round(args.seconds * rate))
        sent: list[int] = []
        t_next = time.monotonic()
        before = {}
        for i in range(n_total):
            if i == n_warm:
                diag = client.latest_diagnostics()
                before = {k: int(diag.get(k, 0)) for k in ("drops", "frames_not_published")}
                sampler = ProcessSampler(proc.pid).start()
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the publisher at the requested rate, not waiting for DDS
            t_next += period
            k = i % len(frames.images)
            stamp_ns = time.time_ns()
            stamp = conv.ns_to_stamp(stamp_ns)
            if i % lidar_every == 0:
                cloud = frames.clouds[(i // lidar_every) % len(frames.clouds)]
                cloud.header.stamp = stamp
                client.points_pub.publish(cloud)
            frames.info.header.stamp = stamp
            client.info_pub.publish(frames.info)
            img = frames.images[k]
            img.header.stamp = stamp
            client.image_pub.publish(img)
            if i >= n_warm:
                sent.append(stamp_ns)
        # Let the last frames through: until every sent frame is in or the node has been idle 1 s.
        try:
            client.wait_for(lambda: all(s in received for s in sent[-3:]), 3.0, "the last frames")
        except TimeoutError:
            pass
        cpu, rss = sampler.stop()
        check_alive(proc)
        diag = {}
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # a diagnostics message newer than the last frame
            diag = client.latest_diagnostics()
            if int(diag.get("frames_published", 0)) + int(diag.get("drops", 0)) >= len(sent):
                break
            time.sleep(0.05)
    finally:
        if client is not None:
            client.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.stop()
        proc.cleanup()
    with lock:
        lat = [(received[s] - s) * 1e-6 for s in sent if s in received]
        cloud_lat = [(clouds[s] - s) * 1e-6 for s in sent if s in clouds]
    stages = {k[len("stage_") : -len("_p50_ms")]: float(v) for k, v in diag.items() if k.startswith("stage_")}
    return RunResult(
        transport=transport,
        rate_hz=rate,
        lidar_rate_hz=rate / lidar_every,
        seconds=args.seconds,
        frames_sent=len(sent),
        depth_received=len(lat),
        lost=len(sent) - len(lat),
        node_drops=int(diag.get("drops", 0)) - before.get("drops", 0),
        node_not_published=int(diag.get("frames_not_published", 0)) - before.get("frames_not_published", 0),
        latency_ms=_percentiles(lat),
        cloud_latency_ms=_percentiles(cloud_lat),
        node_latency_ms={q: float(diag.get(f"latency_stamp_to_publish_{q}_ms", "nan")) for q in ("p50", "p90", "p99")},
        stage_p50_ms=stages,
        cpu_percent=cpu,
        peak_rss_mb=rss,
        output_rate_hz=float(diag.get("output_rate_hz", "nan")),
        estimator=diag.get("estimator", ""),
        mode=diag.get("mode", ""),
    )


# ------------------------------------------------------------------------------------------ report
def markdown_table(results: list[RunResult], meta: dict) -> str:
    head = (
        f"Node bench: {meta['width']}x{meta['height']} synthetic drive, {meta['points_per_scan']} points/scan, "
        f"estimator `{results[0].estimator if results else '?'}`, cloud {meta['cloud']}; machine: {meta['machine']}\n\n"
        "| transport | camera Hz | LiDAR Hz | sent | published | node drops | lost | e2e p50 | e2e p90 | e2e p99 "
        "| cloud p50 | cloud p99 | node p50 | node p99 | CPU % | peak RSS MB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {r.transport} | {r.rate_hz:g} | {r.lidar_rate_hz:g} | {r.frames_sent} | {r.depth_received} | "
        f"{r.node_drops} | {r.lost} | {r.latency_ms['p50']:.1f} | {r.latency_ms['p90']:.1f} | "
        f"{r.latency_ms['p99']:.1f} | {r.cloud_latency_ms['p50']:.1f} | {r.cloud_latency_ms['p99']:.1f} | "
        f"{r.node_latency_ms['p50']:.1f} | {r.node_latency_ms['p99']:.1f} | "
        f"{r.cpu_percent:.0f} | {r.peak_rss_mb:.0f} |"
        for r in results
    ]
    stages = "\n".join(
        f"- {r.transport} @ {r.rate_hz:g} Hz stage p50 (ms): "
        + ", ".join(f"{k} {v:.1f}" for k, v in r.stage_p50_ms.items())
        for r in results
    )
    return head + "\n".join(rows) + "\n\nLatencies in ms (e2e = image stamp -> depth/image received by the bench " \
        "process; cloud = the same for depth/points; node = stamp -> depth/image publish inside the node, last " \
        "300 frames incl. warm-up). 'lost' = frames never published (dropped in the " \
        "node's mailbox, in transport, or not paired).\n\n" + stages + "\n"  # fmt: skip


def parse_params(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if ":=" not in item:
            raise DepthNodesError(f"--param needs NAME:=VALUE, got {item!r}")
        k, v = item.split(":=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _child_runs(args, transport: str, frames_file: Path, workdir: Path) -> list[RunResult]:
    """Run one transport in a child process (fresh Fast DDS settings); returns its results."""
    import subprocess
    import sys

    out = workdir / f"{transport}.json"
    cmd = [sys.executable, "-m", "depth_nodes.cli", "bench", "node", "--transport", transport,
           "--frames-file", str(frames_file), "--json", str(out), "--seconds", str(args.seconds),
           "--warmup", str(args.warmup), "--lidar-rate", str(args.lidar_rate), "--rate", *map(str, args.rate)]  # fmt: skip
    cmd += [a for p in args.param for a in ("--param", p)]
    if args.best_effort:
        cmd.append("--best-effort")
    env = transport_env(transport)
    res = subprocess.run(cmd, env=env)
    if res.returncode != 0 or not out.is_file():
        raise DepthNodesError(f"bench child for transport {transport!r} failed (exit code {res.returncode})")
    return [RunResult(**r) for r in json.loads(out.read_text())["runs"]]


def run(args: argparse.Namespace) -> int:
    import tempfile

    from depth_nodes.core.memory import tune_malloc

    tune_malloc()
    extra = parse_params(args.param)
    if not args.best_effort:
        extra = {"image_qos_reliability": "reliable", "points_qos_reliability": "reliable", **extra}
    if not 0 < args.seconds <= 600 or any(r <= 0 for r in args.rate):
        raise DepthNodesError("--seconds must be in (0, 600] and rates > 0")
    results: list[RunResult] = []
    if args.frames_file is not None:  # child: one transport, frames rendered by the parent
        with np.load(args.frames_file) as data:
            arrays = {k: data[k] for k in data.files}
        frames = make_frames(arrays)
        for rate in args.rate:
            print(
                f"bench node: transport {args.transport[0]}, {rate:g} Hz for {args.seconds:g} s ...",
                flush=True,
            )
            r = run_once(frames, args.transport[0], rate, args, extra)
            print(
                f"  e2e p50/p90/p99 {r.latency_ms['p50']:.1f}/{r.latency_ms['p90']:.1f}/{r.latency_ms['p99']:.1f} ms, "
                f"published {r.depth_received}/{r.frames_sent}, node drops {r.node_drops}, "
                f"CPU {r.cpu_percent:.0f} %, RSS {r.peak_rss_mb:.0f} MB",
                flush=True,
            )
            results.append(r)
        points_per_scan = frames.n_points
    else:
        arrays = render_frames(args.frames, args.seed, args.width, args.height)
        points_per_scan = int(np.mean([v.shape[0] for k, v in arrays.items() if k.startswith("points_")]))
        with tempfile.TemporaryDirectory(prefix="bench_node_") as tmp:
            frames_file = Path(tmp) / "frames.npz"
            np.savez(frames_file, **arrays)
            for transport in args.transport:
                results += _child_runs(args, transport, frames_file, Path(tmp))
    import psutil

    cloud = "organized" if extra.get("cloud_organized") else f"decimated x{extra.get('cloud_decimation', 2)}"
    meta = {
        "width": args.width,
        "height": args.height,
        "points_per_scan": points_per_scan,
        "cloud": cloud,
        "machine": f"{platform.node()} {platform.machine()}, {psutil.cpu_count()} cores, Python {platform.python_version()}",
        "params": extra,
    }
    table = markdown_table(results, meta)
    if args.frames_file is None:
        print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in results]}, indent=2))
        print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
        print(f"wrote {args.markdown}")
    return 0
