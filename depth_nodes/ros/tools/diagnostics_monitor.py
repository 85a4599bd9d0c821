"""In-process rclpy helper that watches the depth node's ``/diagnostics`` (used by ``depth-nodes demo``)."""

from __future__ import annotations

import threading


class Monitor:
    """In-process rclpy node counting the node's outputs and keeping its latest ``/diagnostics``."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from depth_nodes.ros.tools.rosbag_rclpy import init_context

        self.context = init_context()
        self.node = Node("depth_nodes_demo_monitor", context=self.context)
        self.lock = threading.Lock()
        self.diagnostics: dict[str, str] = {}
        self.n_diagnostics = 0
        self._settle_key: tuple[int, int] | None = None  # see finished()
        self._settle_since = 0.0
        self.node.create_subscription(
            DiagnosticArray,
            "/diagnostics",
            self._on_diag,
            QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE),
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutdown races end the spin
                return

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            if st.name.startswith("depth_nodes:"):
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in st.values}
                    self.diagnostics["message"] = st.message
                    self.n_diagnostics += 1

    def latest(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.n_diagnostics, dict(self.diagnostics)

    def close(self) -> None:
        self.context.try_shutdown()
        self.thread.join(timeout=2)
