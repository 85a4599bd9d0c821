"""Reporting of the depth node: ``/diagnostics`` messages and rate-limited warnings.

The level follows the mode: ``guided`` OK, ``lidar_only`` / ``monocular`` WARN (degraded), ``none`` ERROR.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from depth_nodes.pipeline import GUIDED, NONE

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (bytes on the wire)


def level_for_mode(mode: str) -> int:
    return OK if mode == GUIDED else ERROR if mode == NONE else WARN


@dataclass
class NodeReport:
    """A snapshot of the node's state for one diagnostics message (ages in s, rates in Hz, times in ms)."""

    mode: str
    mode_reason: str
    values: dict[str, object] = field(default_factory=dict)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value == float("inf") else f"{value:.4g}")
    return str(value)


def build_diagnostics(report: NodeReport, node_name: str, stamp) -> object:
    """A ``diagnostic_msgs/DiagnosticArray`` with one status named after the node."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus()
    status.level = bytes([level_for_mode(report.mode)])
    status.name = f"depth_nodes: {node_name}"
    status.hardware_id = node_name
    status.message = f"mode {report.mode}: {report.mode_reason}"
    status.values = [
        KeyValue(key="mode", value=report.mode),
        KeyValue(key="mode_reason", value=report.mode_reason),
    ]
    status.values += [KeyValue(key=k, value=_fmt(v)) for k, v in report.values.items()]
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = [status]
    return arr


def diagnostics_to_dict(arr) -> dict[str, str]:
    """``{key: value}`` of the first status of a DiagnosticArray, plus ``level`` and ``message`` (tests, tools)."""
    if not arr.status:
        return {}
    st = arr.status[0]
    out = {kv.key: kv.value for kv in st.values}
    level = st.level
    out["level"] = str(level[0] if isinstance(level, (bytes, bytearray)) else int(level))
    out["message"] = st.message
    return out


class RateLimitedLog:
    """Logs each kind of problem at most once per ``period_s``, with the count suppressed in between.

    Keyed by a short problem key (``"image: unknown encoding"``), not by call site, so that a flood of one
    malformed input never hides a different problem.
    """

    def __init__(self, log: Callable[[str], None], period_s: float = 5.0) -> None:
        self._log = log
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def __call__(self, key: str, message: str) -> bool:
        """Count the problem; log it when its period has passed. Returns True when a line was logged."""
        now = time.monotonic()
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            n = self._suppressed.pop(key, 0)
            self._last[key] = now
        self._log(message + (f" ({n} more like this since the last report)" if n else ""))
        return True

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())
