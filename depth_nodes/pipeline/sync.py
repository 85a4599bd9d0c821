"""Sync primitives of the frame pipeline: :class:`Scan`, the :class:`ScanCache` that pairs an image stamp
with the nearest scan, :class:`CameraInfoSync` that pairs it with the CameraInfo of its stamp, and the one-slot
:class:`Mailbox` that hands frames to the worker."""

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


#: How long an image waits for the CameraInfo of its stamp before it is dropped (s). Drivers publish the two
#: back to back (image_transport's CameraPublisher: the image first), so a real wait is a few ms (the bound is
#: generous: an executor backlog on a loaded machine must not drop a frame whose info is still queued); an image
#: whose info never comes is normally dropped sooner, when a CameraInfo stamped after it arrives.
CAMERA_INFO_WAIT_S = 1.0


_LATER_INFO = "a CameraInfo stamped later arrived, none with its stamp"


@dataclass
class _Waiting:
    stamp_ns: int
    item: object
    deadline_s: float


class CameraInfoSync:
    """Pairs each image with the CameraInfo of its own stamp, as ``message_filters``' exact-time policy (which
    ``depth_image_proc`` uses) does, with an optional tolerance for drivers that stamp them a little apart.

    Infos are kept by stamp (the last ``history``); an image whose info has not arrived yet waits (at most
    ``max_waiting`` images, each at most :data:`CAMERA_INFO_WAIT_S`). Every call returns what it decided, so
    the caller publishes or rejects (and counts) each image exactly once: ``(item, info)`` pairs released and
    ``(item, reason)`` pairs dropped. An image is dropped when a CameraInfo stamped after it (beyond the
    tolerance) arrives without one matching it (per-topic delivery is in order: its info is lost or
    differently stamped), when it waited too long, or when newer images fill the waiting slots.

    Not thread-safe: one thread (the node's executor) calls it.
    """

    def __init__(self, history: int = 16, max_waiting: int = 4, wait_s: float = CAMERA_INFO_WAIT_S) -> None:
        self._infos: deque[tuple[int, object]] = deque(maxlen=max(1, history))
        self._waiting: deque[_Waiting] = deque()
        self.max_waiting = max(1, max_waiting)
        self.wait_s = wait_s

    @property
    def has_info(self) -> bool:
        return bool(self._infos)

    @property
    def n_waiting(self) -> int:
        return len(self._waiting)

    def match(self, stamp_ns: int, tolerance_s: float = 0.0):
        """The kept info nearest to ``stamp_ns`` within ``tolerance_s`` (exact when 0), else None."""
        best, best_gap = None, None
        for s, info in self._infos:
            gap = abs(s - stamp_ns)
            if gap <= tolerance_s * 1e9 and (best_gap is None or gap < best_gap):
                best, best_gap = info, gap
        return best

    def _miss_reason(self, stamp_ns: int, tolerance_s: float, why: str) -> str:
        gaps = [abs(s - stamp_ns) for s, _ in self._infos]
        nearest = f"; nearest CameraInfo {min(gaps) * 1e-6:.3f} ms away" if gaps else ""
        return (
            f"no CameraInfo stamped within camera_info_stamp_tolerance_s={tolerance_s} s of the image ({why}"
            f"{nearest}); a driver stamping them apart needs a tolerance, or camera_info_sync: latest"
        )

    def add_info(self, stamp_ns: int, info, tolerance_s: float = 0.0, now_s: float | None = None):
        """Keep ``info`` (ordered by stamp); ``(released, dropped)`` waiting images it decides."""
        self._infos.append((stamp_ns, info))
        released, dropped, keep = [], [], deque()
        for w in self._waiting:
            if abs(w.stamp_ns - stamp_ns) <= tolerance_s * 1e9:
                released.append((w.item, self.match(w.stamp_ns, tolerance_s)))
            elif stamp_ns - w.stamp_ns > tolerance_s * 1e9:
                dropped.append((w.item, self._miss_reason(w.stamp_ns, tolerance_s, _LATER_INFO)))
            else:
                keep.append(w)
        self._waiting = keep
        if now_s is not None:
            dropped += self.expire(now_s, tolerance_s)
        return released, dropped

    def add_image(self, stamp_ns: int, item, now_s: float, tolerance_s: float = 0.0):
        """``(info or None, dropped)``: the info of ``stamp_ns`` when kept, else ``item`` waits (or, when a
        CameraInfo stamped after it already arrived, is dropped at once: it is among ``dropped``)."""
        dropped = self.expire(now_s, tolerance_s)
        info = self.match(stamp_ns, tolerance_s)
        if info is not None:
            return info, dropped
        if any(s - stamp_ns > tolerance_s * 1e9 for s, _ in self._infos):
            dropped.append((item, self._miss_reason(stamp_ns, tolerance_s, _LATER_INFO)))
            return None, dropped
        self._waiting.append(_Waiting(stamp_ns, item, now_s + self.wait_s))
        while len(self._waiting) > self.max_waiting:
            w = self._waiting.popleft()
            dropped.append((w.item, self._miss_reason(w.stamp_ns, tolerance_s, "newer images kept coming")))
        return None, dropped

    def expire(self, now_s: float, tolerance_s: float = 0.0):
        """``[(item, reason)]`` of waiting images past their deadline (removed)."""
        dropped = []
        while self._waiting and self._waiting[0].deadline_s <= now_s:
            w = self._waiting.popleft()
            dropped.append((w.item, self._miss_reason(w.stamp_ns, tolerance_s, f"waited {self.wait_s} s")))
        return dropped

    def drain(self) -> list:
        """The waiting images (removed), oldest first: the pairing policy changed to ``latest``."""
        items = [w.item for w in self._waiting]
        self._waiting.clear()
        return items
