"""Reporting of the depth node: ``/diagnostics`` messages and rate-limited warnings.

The level tells what was *published* in the last window, not what the mode machine hopes for: nothing
published -> ERROR "no depth published" (whatever the mode, e.g. ``monocular`` without an estimator, or
every frame failing); some frames of the window not published -> at least WARN, naming why; otherwise the
worst mode among the published frames: ``guided`` OK, ``lidar_only`` / ``monocular`` WARN (degraded). Images that were rejected (future stamp, size mismatch,
undecodable, ...) are named in the message, since they leave the camera stale.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from depth_nodes.pipeline import GUIDED, NONE

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (bytes on the wire)


def level_for_mode(mode: str) -> int:
    return OK if mode == GUIDED else ERROR if mode == NONE else WARN


def assess(
    mode: str,
    mode_reason: str,
    published: Mapping[str, int],
    window_s: float,
    not_published: int = 0,
    why_not_published: str = "",
    camera_problem: str = "",
) -> tuple[int, str]:
    """``(level, message)`` of one diagnostics status.

    ``published`` counts the frames published per mode in the last ``window_s``, ``not_published`` the
    frames processed but not published there; ``why_not_published`` is the reason of the last such frame;
    ``camera_problem`` names why camera images are rejected.
    """
    extra = f"; camera images rejected: {camera_problem}" if camera_problem else ""
    why = f"; {why_not_published}" if why_not_published and why_not_published not in mode_reason else ""
    n_published = sum(published.values())
    if not n_published:
        return (
            ERROR,
            f"no depth published in the last {window_s:.3g} s: mode {mode}: {mode_reason}{why}{extra}",
        )
    level = max(level_for_mode(m) for m, n in published.items() if n)
    if not_published:
        share = f"{not_published} of {n_published + not_published} frames in the last {window_s:.3g} s not published"
        return max(level, WARN), f"mode {mode}: {mode_reason}; {share}{why}{extra}"
    return level, f"mode {mode}: {mode_reason}{extra}"


@dataclass
class NodeReport:
    """A snapshot of the node's state for one diagnostics message (ages in s, rates in Hz, times in ms).

    ``level`` / ``message`` come from :func:`assess`; when None the level follows ``mode`` alone.
    """

    mode: str
    mode_reason: str
    values: dict[str, object] = field(default_factory=dict)
    level: int | None = None
    message: str = ""


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value == float("inf") else f"{value:.4g}")
    return str(value)


def build_diagnostics(report: NodeReport, node_name: str, stamp) -> object:
    """A ``diagnostic_msgs/DiagnosticArray`` with one status named after the node."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus()
    level = level_for_mode(report.mode) if report.level is None else report.level
    status.level = bytes([level])
    status.name = f"depth_nodes: {node_name}"
    status.hardware_id = node_name
    status.message = report.message or f"mode {report.mode}: {report.mode_reason}"
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
    At most ``max_keys`` kinds are remembered (keys carry message text, e.g. a frame id a sender made up, so
    a node running for months must not collect them without bound): the least recently seen kind is
    forgotten first, and :attr:`total` keeps counting.
    """

    def __init__(self, log: Callable[[str], None], period_s: float = 5.0, max_keys: int = 256) -> None:
        self._log = log
        self.period_s = period_s
        self.max_keys = max_keys
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()
        self.counts: OrderedDict[str, int] = OrderedDict()  # least recently seen first
        self._total = 0

    def __call__(self, key: str, message: str) -> bool:
        """Count the problem; log it when its period has passed. Returns True when a line was logged."""
        now = time.monotonic()
        with self._lock:
            self._total += 1
            self.counts[key] = self.counts.pop(key, 0) + 1
            while len(self.counts) > self.max_keys:
                old, _ = self.counts.popitem(last=False)
                self._last.pop(old, None)
                self._suppressed.pop(old, None)
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
            return self._total
