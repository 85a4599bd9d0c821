"""Sync primitives of the frame pipeline: :class:`Scan`, the :class:`ScanCache` that pairs an image stamp
with the nearest scan, and the one-slot :class:`Mailbox` that hands frames to the worker."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scan:
    """A LiDAR scan: N x 3 float32 points in ``frame_id`` at ``stamp_ns`` (finite rows only).

    ``point_time_ns``: optional N int64 firing times relative to ``stamp_ns`` (``core.motion``).
    """

    points: np.ndarray
    stamp_ns: int
    frame_id: str
    point_time_ns: np.ndarray | None = None


class ScanCache:
    """The last ``size`` scans by arrival; :meth:`nearest` pairs an image stamp with the closest one.

    Several scans (not just the newest) are kept so that one late or mis-stamped scan does not hide a
    good one; pairing picks the smallest ``|scan stamp - image stamp|`` within ``max_age_s``.
    """

    def __init__(self, size: int = 4) -> None:
        self._scans: deque[Scan] = deque(maxlen=max(1, size))
        self._lock = threading.Lock()
        self.last_arrival: float | None = None

    def add(self, scan: Scan) -> None:
        with self._lock:
            self._scans.append(scan)
            self.last_arrival = time.monotonic()

    def newest(self) -> Scan | None:
        with self._lock:
            return self._scans[-1] if self._scans else None

    def nearest(self, stamp_ns: int, max_age_s: float) -> Scan | None:
        """The scan whose stamp is nearest to ``stamp_ns`` and no further than ``max_age_s`` from it."""
        with self._lock:
            scans = list(self._scans)
        if not scans:
            return None
        gaps = [abs(s.stamp_ns - stamp_ns) for s in scans]
        best = int(np.argmin(gaps))
        return scans[best] if gaps[best] <= max_age_s * 1e9 else None

    def clear(self) -> None:
        with self._lock:
            self._scans.clear()


class Mailbox:
    """A one-slot mailbox: :meth:`put` replaces an unread item (counted in ``dropped``); :meth:`get` waits."""

    def __init__(self) -> None:
        self._item = None
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, item) -> bool:
        """Leave ``item`` for the worker; returns False when it replaced an unread item (a drop)."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._cond.notify()
            return not replaced

    def offer(self, item) -> bool:
        """Leave ``item`` only when the slot is empty (never replaces a newer frame); True when left."""
        with self._cond:
            if self._item is not None:
                return False
            self._item = item
            self._cond.notify()
            return True

    @property
    def pending(self) -> bool:
        """An item is waiting (a hint for the worker: read without the lock)."""
        return self._item is not None

    def get(self, timeout: float | None = None):
        """The newest item, or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
