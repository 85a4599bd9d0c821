"""Run the depth node in its own process and talk to it from this one (integration tests and the node bench).

:class:`NodeProcess` starts ``python -m depth_nodes.cli node --ros-args --params-file ...`` with this
process's environment (so ``ROS_DOMAIN_ID``, ``PYTHONPATH`` and the DDS settings are shared) and always
stops it (SIGINT, then SIGKILL). :class:`NodeClient` is an rclpy node in a private context, spun on a
background thread, with publishers for the node's inputs and subscriptions recording its outputs; waits
are on conditions (matched endpoints, received stamps), never fixed sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import yaml

from depth_nodes.errors import DepthNodesError


class NodeProcess:
    """The depth node as a child process; use as a context manager."""

    def __init__(
        self,
        params: dict | None = None,
        env: dict | None = None,
        shm: bool = False,
        extra_ros_args: list[str] | None = None,
        params_files: list[str | Path] | None = None,
    ) -> None:
        self.params = dict(params or {})
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.shm = shm
        self.extra_ros_args = list(extra_ros_args or [])
        self.params_files = [str(p) for p in (params_files or [])]
        self._tmp = tempfile.TemporaryDirectory(prefix="depth_node_")
        self.log_path = Path(self._tmp.name) / "node.log"
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "depth_nodes.cli", "node"]
        if self.shm:
            cmd.append("--shm")
        cmd.append("--ros-args")
        for f in self.params_files:
            cmd += ["--params-file", f]
        if self.params:
            pfile = Path(self._tmp.name) / "params.yaml"
            pfile.write_text(yaml.safe_dump({"/**": {"ros__parameters": self.params}}))
            cmd += ["--params-file", str(pfile)]
        return cmd + self.extra_ros_args

    def start(self) -> NodeProcess:
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else -1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT, wait, then SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def cleanup(self) -> None:
        self._tmp.cleanup()


def wait_until(pred: Callable[[], bool], timeout: float, what: str, poll: float = 0.01) -> None:
    """Poll ``pred`` until true; :class:`TimeoutError` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")


OUTPUTS = ("depth/image_rect", "depth/camera_info", "depth/confidence", "depth/colorized", "depth/points")
#: Subscribed only when asked for (the node publishes it only with ``depth_geometry: raw``).
RAW_DEPTH = "depth/image_raw"


class NodeClient:
    """Publishers for ``image``/``camera_info``/``points`` and recorders for the node's outputs.

    ``outputs`` selects which output topics to subscribe to (a subscription makes the node produce that
    output). ``on_message(topic, msg, t_recv_ns)`` is called from the spin thread for every output.
    """

    def __init__(
        self,
        name: str = "depth_node_client",
        outputs: tuple[str, ...] = OUTPUTS,
        reliable_inputs: bool = True,
        keep: bool = True,
        on_message: Callable | None = None,
        namespace: str = "",
        input_depth: int = 5,
    ) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node(name, context=self.ctx, namespace=namespace)
        # /diagnostics is one global topic: a client in a namespace reads only its own node's status
        # ("depth_nodes: /ns/depth_node"), not that of another node running beside it.
        self._status_prefix = (
            f"depth_nodes: {namespace.rstrip('/')}/" if namespace.strip("/") else "depth_nodes:"
        )
        rel = ReliabilityPolicy.RELIABLE if reliable_inputs else ReliabilityPolicy.BEST_EFFORT
        # Keep the writer history small by default: with Fast DDS's default 512 KB shared-memory segment
        # a deep history of ~100 KB images overflows it (use config/fastdds_shm.xml for more).
        qos_in = QoSProfile(depth=input_depth, reliability=rel)
        self.image_pub = self.node.create_publisher(Image, "image", qos_in)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", qos_in)
        self.points_pub = self.node.create_publisher(PointCloud2, "points", qos_in)
        self.keep = keep
        self.on_message = on_message
        self.messages: dict[str, list] = defaultdict(list)
        self.counts: dict[str, int] = defaultdict(int)
        self.cond = threading.Condition()
        types = {
            "depth/image_rect": Image,
            RAW_DEPTH: Image,
            "depth/camera_info": CameraInfo,
            "depth/confidence": Image,
            "depth/colorized": Image,
            "depth/points": PointCloud2,
        }
        qos_out = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.subs = [self.node.create_subscription(types[t], t, self._recorder(t), qos_out) for t in outputs]
        self.diag_sub = self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._recorder("/diagnostics"), QoSProfile(depth=50)
        )
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races end the spin
            pass

    def _recorder(self, topic: str):
        def cb(msg) -> None:
            t = time.time_ns()
            if self.on_message is not None:
                self.on_message(topic, msg, t)
            with self.cond:
                self.counts[topic] += 1
                if self.keep or topic == "/diagnostics":
                    self.messages[topic].append(msg)
                self.cond.notify_all()

        return cb

    # ---------------------------------------------------------------- waits
    def wait_matched(
        self, timeout: float = 30.0, inputs: tuple[str, ...] = ("image", "camera_info", "points")
    ) -> None:
        """Until the node's publishers and its subscriptions to ``inputs`` have matched ours (DDS discovery)."""
        pubs = {"image": self.image_pub, "camera_info": self.info_pub, "points": self.points_pub}

        def matched() -> bool:
            return all(s.get_publisher_count() > 0 for s in self.subs) and all(
                pubs[name].get_subscription_count() > 0 for name in inputs
            )

        wait_until(matched, timeout, "the depth node's topics to match")

    def wait_for(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
                self.cond.wait(left)

    def stamps(self, topic: str) -> list[int]:
        with self.cond:
            return [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in self.messages[topic]]

    def wait_stamp(self, topic: str, stamp_ns: int, timeout: float = 10.0):
        """The message on ``topic`` whose header stamp is ``stamp_ns``."""

        def find():
            for m in reversed(self.messages[topic]):
                if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp_ns:
                    return m
            return None

        self.wait_for(lambda: find() is not None, timeout, f"{topic} stamped {stamp_ns}")
        with self.cond:
            return find()

    def latest_diagnostics(self) -> dict[str, str]:
        from depth_nodes.ros.diagnostics import diagnostics_to_dict

        with self.cond:
            msgs = list(self.messages["/diagnostics"])
        for m in reversed(msgs):
            for st in m.status:
                if st.name.startswith(self._status_prefix):
                    return diagnostics_to_dict(type(m)(status=[st]))
        return {}

    def wait_mode(self, mode: str, timeout: float) -> dict[str, str]:
        """Until /diagnostics reports ``mode``; returns that report."""
        from depth_nodes.ros.diagnostics import diagnostics_to_dict

        def seen() -> bool:
            for m in self.messages["/diagnostics"][-3:]:
                if m.status and diagnostics_to_dict(m).get("mode") == mode:
                    return True
            return False

        try:
            self.wait_for(seen, timeout, f"/diagnostics to report mode {mode!r}")
        except TimeoutError as exc:
            with self.cond:
                modes = [diagnostics_to_dict(m).get("mode") for m in self.messages["/diagnostics"][-20:]]
            raise TimeoutError(f"{exc}; last modes reported: {modes}") from None
        return self.latest_diagnostics()

    def close(self) -> None:
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            import rclpy

            rclpy.try_shutdown(context=self.ctx)
            self._thread.join(timeout=2.0)


def check_alive(proc: NodeProcess) -> None:
    if not proc.alive():
        raise DepthNodesError(
            f"the depth node exited (code {proc.proc.returncode}):\n{proc.output()[-3000:]}"
        )
