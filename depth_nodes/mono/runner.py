"""The monocular net's own thread: one job slot (the newest frame wins), results kept by key, bounded waits.

Policy (``GuardedMono`` in the node): the worker hands each monocular frame to this thread and waits for it at
most ``mono_frame_budget_s``. Done in time -> published with the frame. Not done -> the frame publishes the newest
*finished, not yet published* estimate of an earlier frame, stamped with that frame's image (each estimate once),
or nothing. A frame arriving while the net is busy replaces the one still waiting (never a queue: the net runs at
its own rate on the newest image). A slower net thus lowers the monocular output rate, never the worker's.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

KEEP_RESULTS = 8


@dataclass
class JobResult:
    key: Hashable
    ok: bool
    value: Any  # the job's return value, or the exception it raised
    seconds: float

    def unwrap(self) -> Any:
        if not self.ok:
            raise self.value
        return self.value


class LatestJobRunner:
    """A daemon thread running submitted callables one at a time (see the module docstring)."""

    def __init__(self, name: str = "mono-infer") -> None:
        self._cv = threading.Condition()
        self._pending: tuple[Hashable, Callable[[], Any]] | None = None
        self._running: Hashable | None = None
        self._results: OrderedDict[Hashable, JobResult] = OrderedDict()
        self._closed = False
        self.dropped = 0  # jobs replaced by a newer one before they started
        self.last_seconds = float("nan")
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, fn: Callable[[], Any], only_if_idle: bool = False) -> bool:
        """Queue ``fn`` under ``key`` (replacing a job not yet started); ``only_if_idle``: only when nothing runs."""
        with self._cv:
            if self._closed or (only_if_idle and (self._pending is not None or self._running is not None)):
                return False
            if self._pending is not None:
                self.dropped += 1
            self._pending = (key, fn)
            self._cv.notify_all()
            return True

    def wait(self, key: Hashable, timeout_s: float) -> JobResult | None:
        """The result of ``key`` (taken) when it finishes within ``timeout_s``; None when late or replaced."""

        def settled() -> bool:
            pending = self._pending[0] if self._pending is not None else None
            return key in self._results or (pending != key and self._running != key)

        with self._cv:
            self._cv.wait_for(settled, timeout=max(0.0, timeout_s))
            return self._results.pop(key, None)

    def take_newest(self, kind: str) -> JobResult | None:
        """The newest finished result whose key is ``(kind, ...)``, taken; older ones of that kind are dropped."""
        with self._cv:
            keys = [k for k in self._results if isinstance(k, tuple) and k and k[0] == kind]
            if not keys:
                return None
            newest = self._results.pop(keys[-1])
            for k in keys[:-1]:
                del self._results[k]
            return newest

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._pending is not None or self._running is not None

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop after the running job (a daemon thread left in native torch / ORT code at exit aborts)."""
        with self._cv:
            self._closed = True
            self._pending = None
            self._cv.notify_all()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                key, fn = self._pending
                self._pending, self._running = None, key
            t0 = time.perf_counter()
            try:
                res = JobResult(key, True, fn(), 0.0)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting frame, never kills the thread
                res = JobResult(key, False, exc, 0.0)
            res.seconds = time.perf_counter() - t0
            with self._cv:
                self.last_seconds = res.seconds
                self._running = None
                self._results[key] = res
                while len(self._results) > KEEP_RESULTS:
                    self._results.popitem(last=False)
                self._cv.notify_all()
