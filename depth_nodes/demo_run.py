"""The processes of ``depth-nodes demo``: the depth node and the recorder in their own processes, the player
and a ``/diagnostics`` monitor in this one, and the flow control that keeps every played frame countable.

Flow control (default): after each image the player waits until the node has finished every earlier image,
and after the scan that follows it until that image is finished too, so no image is ever displaced (dropped)
from the node's one-slot mailbox by the next one when the node is slower than the playback on a loaded
machine. A node that keeps up never waits; one that
does not slows the playback down instead of dropping frames. ``--realtime`` plays at recorded timing only
(a slow node then drops frames as it would live; ``depth-nodes bench node`` measures that at fixed rates).
"""

from __future__ import annotations

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
from depth_nodes.data import rosbag_io as rb
from depth_nodes.errors import DepthNodesError

if TYPE_CHECKING:
    from depth_nodes.ros.tools.diagnostics_monitor import Monitor


#: The node's /diagnostics period in the demo: the flow control reads the node's frame counts from it.
DIAGNOSTICS_PERIOD_S = 0.1


class DemoError(DepthNodesError):
    """A demo stage failed (the message names the stage and where its log is)."""


def _log(msg: str) -> None:
    print(msg, flush=True)


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


class FlowControl:
    """Holds the player after each image until the node has finished every earlier image (see module doc).

    The node's counts come from its ``/diagnostics`` (period ``DIAGNOSTICS_PERIOD_S``). An image the node
    never counts (rejected in its callback) would hold every later one: after ``max_wait_s`` it is written
    off (``written_off``; it shows up as unaccounted in the report) and the player goes on.
    """

    def __init__(self, monitor: Monitor, alive, max_wait_s: float = 5.0) -> None:
        self.monitor, self.alive, self.max_wait_s = monitor, alive, max_wait_s
        self.images = 0
        self.written_off = 0
        self.holds = 0
        self.held_s = 0.0

    def after_image(self) -> None:
        self.images += 1
        self._hold(self.images - 1)  # every image before this one

    def after_scan(self) -> None:
        """After the scan that follows an image (its own scan, or the next frame's when scans lead), hold
        until that image is finished too: the next image then never meets an earlier one still waiting in
        the node's one-slot mailbox or pairing slot (a loaded machine dropped 2 of 20 with the image hold
        alone), and the image already has the scan it pairs with."""
        if self.images:
            self._hold(self.images)

    def _hold(self, images: int) -> None:
        need = images - self.written_off
        t0 = time.monotonic()
        while (done := accounted(self.monitor.latest()[1])) < need:
            self.alive()
            if time.monotonic() - t0 > self.max_wait_s:
                self.written_off += need - done
                break
            time.sleep(0.005)
        held = time.monotonic() - t0
        if held > 0.001:
            self.holds += 1
            self.held_s += held

    def summary(self) -> str:
        text = f"on: the player was held {self.holds} times, {self.held_s:.1f} s in all"
        return text + (f"; {self.written_off} image(s) never counted by the node" if self.written_off else "")


def _wait(cond, timeout: float, what: str, alive=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _start_recorder(out_bag: Path, log_path: Path, env: dict) -> subprocess.Popen:
    from depth_nodes.eval.demo_bags import OUTPUT_TOPICS

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
        "diagnostics_period_s": DIAGNOSTICS_PERIOD_S,
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
    realtime: bool = False,
    skip_points=None,
) -> dict:
    """Node + recorder + player; returns what the report needs (publish times, diagnostics, paths).
    ``skip_points(stamp_ns)`` True: that scan is withheld (the LiDAR dropout of the default drive)."""
    from depth_nodes.ros.tools.bag_play import play
    from depth_nodes.ros.tools.node_harness import NodeProcess

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
    flow: FlowControl | None = None
    try:
        node.start()
        recorder = _start_recorder(out_bag, rec_log, env)
        from depth_nodes.ros.tools.diagnostics_monitor import Monitor

        monitor = Monitor()

        def alive() -> None:
            if not node.alive():
                raise DemoError(
                    f"the depth node exited (code {node.proc.returncode}):\n{node.output()[-2500:]}"
                )
            if recorder.poll() is not None:
                raise DemoError(f"the recorder exited (code {recorder.returncode}); log: {rec_log}")

        from depth_nodes.eval.demo_bags import OUTPUT_TOPICS

        _wait(
            lambda: rec_log.read_text().count("record: subscribed to") >= len(OUTPUT_TOPICS),
            timeout_s,
            f"the recorder to subscribe to the node's outputs (log {rec_log})",
            alive,
        )
        _log(f"[3/5] depth node (pid {node.pid}) and recorder (pid {recorder.pid}) running")
        stop = threading.Event()
        n_images = [0]

        flow = None if realtime else FlowControl(monitor, alive)

        def on_publish(topic: str, _t: int, raw: bytes, wall_ns: int) -> None:
            if topic == topics["image"]:
                published[rb.header_stamp_ns(raw)] = wall_ns
                n_images[0] += 1
                if max_images is not None and n_images[0] >= max_images:
                    stop.set()
                elif flow is not None:
                    flow.after_image()
            elif topic == topics["points"] and flow is not None:
                flow.after_scan()

        def withhold(topic: str, raw: bytes) -> bool:
            """A withheld scan holds the player like a played one (its image is finished first)."""
            if topic != topics["points"] or not skip_points(rb.header_stamp_ns(raw)):
                return False
            if flow is not None:
                flow.after_scan()
            return True

        play_topics = [topics["image"], topics["info"], topics["points"]]
        t0 = time.perf_counter()
        stats = play(
            input_bag, rate=rate, topics=play_topics, wait_for_subscribers_s=timeout_s, stop=stop,
            progress=False, on_publish=on_publish,
            skip=None if skip_points is None else withhold,
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
    flow_text = "off (--realtime: recorded timing only)" if flow is None else flow.summary()
    return {
        "output_bag": out_bag,
        "published_ns": published,
        "diagnostics": final_diag,
        "flow_control": flow_text,
    }
