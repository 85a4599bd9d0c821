"""Running the installed launch files for real: what is needed, the launch process, and a probe node.

The launch files run from a colcon install space built with this environment's colcon (``python -m colcon
build``, :func:`install_tools.env_colcon`: the installed executables then start with this interpreter, the one
with rclpy), through ``test/launch_run.py`` (``ros2 launch`` without the ``ros2`` CLI: ``LaunchService``),
with the environment ``source install/setup.bash`` gives (``AMENT_PREFIX_PATH``, ``PYTHONPATH`` = the install
space, not this source tree).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT.parent / "shared" / "wheels" / "ros2_launch"
RUNNER = Path(__file__).with_name("launch_run.py")
#: module -> what provides it
NEEDED = {
    "launch": f"the launch wheel ({WHEELS})",
    "launch_ros": f"the launch_ros wheel ({WHEELS})",
    "osrf_pycommon": "osrf-pycommon (PyPI)",
    "lark": "lark-parser (PyPI)",
    "ament_index_python": "ros-jazzy-ament-index-python (PyPI)",
    "rclpy": "ros-jazzy-rclpy (PyPI, the [ros] extra)",
}
_STARTED = re.compile(r"\[INFO\] \[(?P<name>[\w.]+)-\d+\]: process started with pid \[(?P<pid>\d+)\]")


def missing_launch_tools() -> list[str]:
    """What the launch tests need and this interpreter lacks (empty when all is there)."""
    missing = []
    for module, what in NEEDED.items():
        spec = importlib.util.find_spec(module)
        # This checkout's launch/ folder is a namespace package named `launch` too: only a real one counts.
        if spec is None or (module == "launch" and spec.origin in (None, "namespace")):
            missing.append(what)
    return missing


def installed_env(prefix: Path, log_dir: Path) -> dict[str, str]:
    """This process's environment as ``source <install>/setup.bash`` leaves it (the install space in front,
    this source tree out of ``PYTHONPATH``); launch's and the nodes' logs under ``log_dir``."""
    (site,) = prefix.glob("lib/python3*/site-packages")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [str(prefix), os.environ.get("AMENT_PREFIX_PATH")]))
    env["ROS_LOG_DIR"] = str(log_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


class LaunchRun:
    """``ros2 launch depth_nodes FILE ARGS`` as a child process (``test/launch_run.py``); always stopped."""

    def __init__(self, file_name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER), "depth_nodes", file_name, *args],
            stdout=self._out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """Until launch exits by itself (e.g. on a bad argument); its exit status."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.stop()

    def processes(self) -> dict[str, int]:
        """Process name -> pid of every process launch started (from launch's own log lines)."""
        return {m["name"]: int(m["pid"]) for m in _STARTED.finditer(self.output())}

    def check_running(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"launch exited with {self.proc.returncode}:\n{self.output()[-4000:]}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """Ctrl-C (SIGINT: launch stops its processes), then SIGKILL to the whole group; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._out.close()
        return self.proc.returncode


def process_env(pid: int) -> dict[str, str]:
    """The environment a running process was started with (Linux ``/proc``)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


class Probe:
    """An rclpy node in a private context spun on a thread: publishers and depth subscriptions on exact
    (absolute) topic names, and the launched node's parameters through its parameter services."""

    def __init__(self, name: str, publish: dict[str, str], subscribe: list[str]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        types = {"image": Image, "camera_info": CameraInfo, "points": PointCloud2}
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node(name, context=self.ctx)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # attribute names of node_harness.NodeClient, so that node_io.SceneSender can publish through it
        self.image_pub, self.info_pub, self.points_pub = (
            self.node.create_publisher(types[k], publish[k], qos) if k in publish else None
            for k in ("image", "camera_info", "points")
        )
        self.messages: dict[str, list] = {t: [] for t in subscribe}
        self.cond = threading.Condition()
        self.subs = [
            self.node.create_subscription(Image, t, self._recorder(t), QoSProfile(depth=20)) for t in subscribe
        ]
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
            with self.cond:
                self.messages[topic].append(msg)
                self.cond.notify_all()

        return cb

    def wait_for(self, pred, timeout: float, what: str, launched: LaunchRun) -> None:
        """Until ``pred()`` (polled on every received message and every 0.2 s), failing with launch's output
        when launch exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                launched.check_running()
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n"
                                         f"{launched.output()[-4000:]}")  # fmt: skip
                self.cond.wait(0.2)

    def matched(self) -> bool:
        """Every publisher has a subscriber and every subscription a publisher (DDS discovery done)."""
        pubs = [p for p in (self.image_pub, self.info_pub, self.points_pub) if p is not None]
        return all(p.get_subscription_count() > 0 for p in pubs) and all(
            s.get_publisher_count() > 0 for s in self.subs
        )

    def stamped(self, topic: str, stamps_ns) -> list:
        wanted = set(stamps_ns)
        with self.cond:
            return [m for m in self.messages[topic] if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec in wanted]

    def parameters(self, node: str, names: list[str], timeout: float = 20.0) -> dict:
        """``names`` -> value, read from the running node ``node`` (its fully qualified name)."""
        from rclpy.parameter import parameter_value_to_python
        from rclpy.parameter_client import AsyncParameterClient

        client = AsyncParameterClient(self.node, node)
        if not client.wait_for_services(timeout_sec=timeout):
            raise AssertionError(f"no parameter services of {node}")
        answered = threading.Event()
        future = client.get_parameters(names, callback=lambda _: answered.set())  # set on the spin thread
        assert answered.wait(timeout) and future.done(), f"get_parameters of {node}: no answer in {timeout} s"
        return dict(zip(names, (parameter_value_to_python(v) for v in future.result().values), strict=True))

    def close(self) -> None:
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            import rclpy

            rclpy.try_shutdown(context=self.ctx)
            self._thread.join(timeout=2.0)
