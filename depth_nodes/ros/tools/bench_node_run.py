"""One run of ``depth-nodes bench node``: synthetic frames as messages, the node in its own process, one
(transport, rate) measurement (latency, counts, CPU, RSS; see :mod:`depth_nodes.ros.tools.bench_node`)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_nodes import resources
from depth_nodes.errors import DepthNodesError
from depth_nodes.ros.node_main import TOPICS

TRANSPORT_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS")
#: --transport choices: the shipped profiles, Fast DDS's built-in UDPv4 alone (OS-default socket buffers), and
#: Fast DDS's defaults (512 KB shared memory + UDPv4).
TRANSPORTS = {
    "udp": "fastdds_udp.xml (UDPv4 only, 32 MB socket buffers)",
    "shm": "fastdds_shm.xml (64 MB shared-memory segment + UDPv4)",
    "udp_builtin": "Fast DDS built-in UDPv4 only, OS-default socket buffers",
    "default": "Fast DDS built-ins (512 KB shared memory + UDPv4)",
}
CAMERA_FRAME, LIDAR_FRAME = "camera_color_left", "velo_link"
#: The outputs the bench times: the node's depth image (e2e) and its cloud.
DEPTH, CLOUD = TOPICS["depth"], TOPICS["cloud"]
#: /diagnostics keys copied into each result (why frames were not published, what arrived).
INPUT_KEYS = ("frames_in", "image_received_rate_hz", "image_rate_hz", "lidar_rate_hz", "last_not_published_reason",
              "rejected_messages", "images_rejected", "last_image_rejection", "qos_incompatibilities")  # fmt: skip
#: The parts of the end-to-end latency in order (node stages from /diagnostics; ``deliver`` = e2e p50 - the
#: node's stamp -> publish p50: the output's transport to the bench process). The cloud (``cloud`` +
#: ``publish_cloud``) and the calibration check run after the depth image is out (no latency for it) and
#: are reported with the worker's time per frame instead.
E2E_PARTS = ("receive", "queue", "motion", "project", "estimate", "colorize", "publish", "deliver")
#: Worker stages after the depth image is published.
AFTER_PUBLISH = ("cloud", "publish_cloud", "drift")
#: Node counters read before and after the measured seconds (differences are the run's).
COUNTERS = ("drops", "frames_not_published", "frames_in", "frames_published", "drift_checks")


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
    from depth_nodes.ros.builders.buffer import set_data
    from depth_nodes.ros.builders.camera_info import model_to_camera_info
    from depth_nodes.ros.builders.image import numpy_to_image

    width, height = (int(v) for v in arrays["size"])
    camera = CameraModel(width, height, arrays["K"])
    fields = [
        PointField(name=c, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, c in enumerate("xyz")
    ]
    fields.append(PointField(name="intensity", offset=12, datatype=PointField.FLOAT32, count=1))
    images, clouds, n_points = [], [], 0
    n = sum(1 for k in arrays if k.startswith("image_"))
    for i in range(n):
        images.append(numpy_to_image(arrays[f"image_{i}"], "rgb8", Header(frame_id=CAMERA_FRAME)))
        pts = arrays[f"points_{i}"]
        msg = PointCloud2(header=Header(frame_id=LIDAR_FRAME), height=1, width=pts.shape[0], fields=fields)
        msg.point_step, msg.row_step, msg.is_dense, msg.is_bigendian = 16, 16 * pts.shape[0], True, False
        set_data(msg, pts)
        clouds.append(msg)
        n_points += pts.shape[0]
    info = model_to_camera_info(camera, Header(frame_id=CAMERA_FRAME))
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
    lost: int  # sent - received by the bench = node_drops + node_not_published + lost_in_transport
    node_drops: int  # frames replaced in the node's one-slot mailbox (each counted by the node)
    node_not_published: int  # frames the node processed but could not publish (no scan paired, ...)
    latency_ms: dict = field(default_factory=dict)  # end to end: stamp -> the depth image (DEPTH) received here
    cloud_latency_ms: dict = field(default_factory=dict)  # stamp -> depth/points received here
    node_latency_ms: dict = field(default_factory=dict)  # stamp -> publish, from /diagnostics
    stage_p50_ms: dict = field(default_factory=dict)
    cpu_percent: float = 0.0
    peak_rss_mb: float = 0.0
    output_rate_hz: float = 0.0
    estimator: str = ""
    mode: str = ""
    node_inputs: dict = field(default_factory=dict)  # what the node's last /diagnostics says about its inputs
    lost_in_transport: int = (
        0  # lost neither in the mailbox nor unpublished: never reached the node / the bench
    )
    e2e_parts_p50_ms: dict = field(default_factory=dict)  # E2E_PARTS: where the e2e time goes
    worker_busy_ms: dict = field(
        default_factory=dict
    )  # the worker's time per frame (all stages): p50, p99, mean
    sustainable_rate_hz: float = float("nan")  # 1000 / mean worker time per frame
    cpu_ms_per_frame: float = float("nan")  # node process CPU time (all threads) / frames published
    drift_checks: int = 0  # calibration checks run during the measured seconds


def transport_env(transport: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TRANSPORT_VARS}
    if transport == "udp_builtin":
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    elif transport in resources.FASTDDS_PROFILES:
        resources.use_fastdds_profile(transport, env)
    elif transport.endswith(".xml"):
        if not Path(transport).is_file():
            raise DepthNodesError(f"--transport {transport}: no such Fast DDS profile")
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(Path(transport).resolve())
        env.setdefault("RMW_FASTRTPS_USE_QOS_FROM_XML", "0")
    elif transport != "default":
        raise DepthNodesError(
            f"--transport {transport!r}: choose from {', '.join(TRANSPORTS)} or a .xml profile"
        )
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
        """``(cpu_percent, peak_rss_mb)``; 100 % = one core (``cpu_s``: the CPU seconds behind it)."""
        cpu = self.cpu_s = sum(self.proc.cpu_times()[:2]) - self.cpu0
        wall = time.monotonic() - self.t0
        self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss, _vm_hwm(self.proc.pid))
        self._stop.set()
        self._thread.join(1.0)
        return 100.0 * cpu / max(wall, 1e-9), self.peak_rss / 2**20


def _settled_counters(client, timeout_s: float = 2.0) -> dict[str, int]:
    """The node's counters once its /diagnostics account for every warm-up frame, so the run's drops and
    losses are its own: a report from before the last warm-up frames would put their drops into the run. Sending pauses meanwhile: done when a new report shows every frame
    that came in handled and no frame arrived since the report before it (<= ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    last: dict = {}
    last_in = -1
    while True:
        diag = client.latest_diagnostics()
        counters = {k: int(diag.get(k, 0)) for k in COUNTERS}
        if diag != last:  # a new report (ages and rates change in every one)
            handled = counters["frames_published"] + counters["frames_not_published"] + counters["drops"]
            if counters["frames_in"] == last_in and handled >= counters["frames_in"]:
                return counters
            last, last_in = diag, counters["frames_in"]
        if time.monotonic() > deadline:
            return counters
        time.sleep(0.05)


def _vm_hwm(pid: int) -> int:
    """The kernel's peak RSS of ``pid`` over its whole life (bytes; Linux ``VmHWM``), 0 where unavailable:
    sampling alone misses a short start-up peak."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    a = np.asarray(values)
    p50, p90, p99 = np.percentile(a, (50, 90, 99))
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max())}


def run_once(frames: BenchFrames, transport: str, rate: float, args, extra_params: dict) -> RunResult:
    from depth_nodes.msgs.stamp import stamp_to_ns
    from depth_nodes.ros.builders.stamp import ns_to_stamp
    from depth_nodes.ros.tools.node_harness import NodeClient, NodeProcess, check_alive

    env = transport_env(transport)
    profile = None
    if getattr(args, "profile", None) is not None:  # the node worker's cProfile (node_worker.PROFILE_ENV)
        args.profile.mkdir(parents=True, exist_ok=True)
        profile = (args.profile / f"node_{Path(transport).stem}_{rate:g}hz.prof").resolve()
        env = {**env, "DEPTH_NODES_PROFILE": str(profile)}
    proc = NodeProcess(extra_params, env=env, params_files=resources.node_params_files()).start()
    received: dict[int, int] = {}
    clouds: dict[int, int] = {}
    lock = threading.Lock()

    def on_message(topic: str, msg, t_recv_ns: int) -> None:
        if topic in (DEPTH, CLOUD):
            with lock:
                (received if topic == DEPTH else clouds)[stamp_to_ns(msg.header.stamp)] = t_recv_ns

    saved = {k: os.environ.get(k) for k in TRANSPORT_VARS}
    os.environ.update({k: env[k] for k in TRANSPORT_VARS if k in env})
    for k in TRANSPORT_VARS:
        if k not in env:
            os.environ.pop(k, None)
    client = None
    try:
        client = NodeClient(
            "depth_node_bench", outputs=(DEPTH, CLOUD), reliable_inputs=True, keep=False,
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
                before = _settled_counters(client)
                sampler = ProcessSampler(proc.pid).start()
                t_next = time.monotonic()
            delay = t_next - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the publisher at the requested rate, not waiting for DDS
            t_next += period
            k = i % len(frames.images)
            stamp_ns = time.time_ns()
            stamp = ns_to_stamp(stamp_ns)
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
        cpu_s = sampler.cpu_s
        check_alive(proc)
        diag = {}
        deadline = time.monotonic() + 3.0
        handled = ("frames_published", "frames_not_published", "drops")
        while time.monotonic() < deadline:  # a diagnostics message that accounts for every measured frame
            diag = client.latest_diagnostics()
            if sum(int(diag.get(k, 0)) - before.get(k, 0) for k in handled) >= len(sent):
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
    if profile is not None and profile.is_file():
        import pstats

        print(f"  node worker profile (CPU time, all frames incl. warm-up): {profile}")
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(15)
    with lock:
        lat = [(received[s] - s) * 1e-6 for s in sent if s in received]
        cloud_lat = [(clouds[s] - s) * 1e-6 for s in sent if s in clouds]
    stages = {k[len("stage_") : -len("_p50_ms")]: float(v) for k, v in diag.items() if k.startswith("stage_")}
    delta = {k: int(diag.get(k, 0)) - before.get(k, 0) for k in COUNTERS}
    e2e, node_lat = _percentiles(lat), float(diag.get("latency_stamp_to_publish_p50_ms", "nan"))
    parts = {k: stages.get(k, 0.0) for k in E2E_PARTS[:-1]}
    parts["deliver"] = e2e["p50"] - node_lat
    lost = len(sent) - len(lat)
    return RunResult(
        transport=transport,
        rate_hz=rate,
        lidar_rate_hz=rate / lidar_every,
        seconds=args.seconds,
        frames_sent=len(sent),
        depth_received=len(lat),
        lost=lost,
        node_drops=delta["drops"],
        node_not_published=delta["frames_not_published"],
        lost_in_transport=max(0, lost - delta["drops"] - delta["frames_not_published"]),
        latency_ms=e2e,
        cloud_latency_ms=_percentiles(cloud_lat),
        node_latency_ms={
            q: float(diag.get(f"latency_stamp_to_publish_{q}_ms", "nan")) for q in ("p50", "p90", "p99")
        },
        stage_p50_ms=stages,
        cpu_percent=cpu,
        peak_rss_mb=rss,
        output_rate_hz=float(diag.get("output_rate_hz", "nan")),
        estimator=diag.get("estimator", ""),
        mode=diag.get("mode", ""),
        node_inputs={k: diag[k] for k in INPUT_KEYS if k in diag},
        e2e_parts_p50_ms=parts,
        worker_busy_ms={q: float(diag.get(f"worker_busy_{q}_ms", "nan")) for q in ("p50", "p99", "mean")},
        sustainable_rate_hz=float(diag.get("sustainable_rate_hz", "nan")),
        cpu_ms_per_frame=cpu_s * 1e3 / max(1, delta["frames_published"]),
        drift_checks=delta["drift_checks"],
    )
