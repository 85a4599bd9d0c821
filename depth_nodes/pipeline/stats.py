"""Rolling statistics of the node: latency percentiles and event rates."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class RollingStats:
    """Percentiles of the last ``size`` samples (latencies in ms)."""

    def __init__(self, size: int = 300) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))

    def percentiles(self, qs: tuple[float, ...] = (50, 90, 99)) -> dict[float, float]:
        with self._lock:
            vals = np.array(self._values, dtype=np.float64)
        if vals.size == 0:
            return {q: float("nan") for q in qs}
        return dict(zip(qs, np.percentile(vals, qs).tolist(), strict=True))

    def mean(self) -> float:
        """Mean of the kept samples (nan when none)."""
        with self._lock:
            n = len(self._values)
            return sum(self._values) / n if n else float("nan")

    def __len__(self) -> int:
        return len(self._values)


class RateMeter:
    """Events per second over the last ``window_s`` seconds (monotonic clock).

    At most ``max_events`` event times are kept (a flood of thousands of events per second must not grow
    memory); beyond that the rate saturates at ``max_events / window_s``.
    """

    def __init__(self, window_s: float = 5.0, max_events: int = 10_000) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=max_events)
        self._lock = threading.Lock()
        self.total = 0
        self.last: float | None = None

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.total += 1
            self.last = now
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate_hz(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._times)
            if n < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (n - 1) / span if span > 0 else 0.0

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the last event (inf when none)."""
        now = time.monotonic() if now is None else now
        return float("inf") if self.last is None else now - self.last
