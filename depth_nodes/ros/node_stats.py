"""What the depth node did, for ``/diagnostics``: published frames per mode, rejections, latencies, stages.

The frame budget: ``stage_*`` are the worker's per-frame stages back to back (``motion`` = pairing +
extrinsics + motion compensation, ``project``, ``estimate``, ``colorize``, ``cloud``, ``publish``, and
``drift`` = the calibration check on the frames it runs), so they add up to ``worker_busy`` (the worker's
time per frame, start to end, after publishing included); ``queue`` = image receipt -> worker start (image
conversion in the callback + the wait in the mailbox). The sustainable rate is 1000 / mean busy ms;
``process_cpu_per_frame`` is the node process's CPU time (every thread: executor, DDS, worker, model
loaders) per published frame, the figure least sensitive to other load on the machine.

Written by the worker and the executor callbacks, read by the diagnostics timer: every container is
bounded and guarded by one lock, and :meth:`NodeStats.snapshot` copies what a report needs, so a report
never iterates a dict another thread is growing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace

from depth_nodes import pipeline as pl

#: Camera-image rejection causes (fixed set: the counters cannot grow with message contents).
IMAGE_REJECTIONS = (
    "future stamp", "undecodable", "no camera_info", "unmatched camera_info", "size mismatch", "no frame_id",
)
#: |node clock - image stamp| beyond which the stamps are taken to be on another clock (a bag replayed
#: without use_sim_time, a camera clock not synchronised to the host): stamp-to-publish latency is then
#: meaningless and only the processing time (receipt -> publish) is reported.
CLOCK_AGREEMENT_S = 10.0


@dataclass(frozen=True)
class StatsSnapshot:
    published_by_mode: dict[str, int]
    not_published_in_window: int
    newest_published_mode: str
    image_rejections: dict[str, int]
    recent_image_rejection: str  # "cause: text" of the last rejection within the window, else ""
    stage_p50_ms: dict[str, float]
    frames_published: int
    frames_not_published: int
    last_not_published: str
    off_clock_frames: int
    busy_ms: dict[str, float] = field(default_factory=dict)  # worker time per frame: p50, p99, mean
    busy_cpu_p50_ms: float = float("nan")  # the worker thread's CPU time per frame
    process_cpu_per_frame_ms: float = float("nan")  # process CPU time / published frames (recent window)


class NodeStats:
    """Counters and rolling statistics of one node (thread-safe, bounded)."""

    def __init__(self, window_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self.latency = pl.RollingStats(300)  # image stamp -> publish (ms), only when the clocks agree
        self.processing = pl.RollingStats(300)  # image receipt -> publish (ms)
        self.busy = pl.RollingStats(300)  # worker time per frame, all stages (ms)
        self.busy_cpu = pl.RollingStats(300)  # worker thread CPU time per frame (ms)
        #: process CPU time (s) at each recent published frame: CPU per frame over the window
        self._cpu_marks: deque[float] = deque(maxlen=300)
        self.output_rate = pl.RateMeter()
        self._stages: dict[str, pl.RollingStats] = {}
        #: Outcome of each recent frame: (monotonic s, mode, published).
        self._outcomes: deque[tuple[float, str, bool]] = deque(maxlen=window_size)
        self._rejections: Counter[str] = Counter()
        self._last_rejection: tuple[float, str] = (float("-inf"), "")
        self.frames_published = 0
        self.frames_not_published = 0
        self.last_not_published = ""
        self.off_clock_frames = 0

    # ---------------------------------------------------------------- writers
    def published(
        self,
        mode: str,
        timings_ms: dict[str, float],
        processing_ms: float,
        gap_ms: float | None,
        busy_ms: float | None = None,
        busy_cpu_ms: float | None = None,
    ):
        """One published frame; ``gap_ms`` = node clock - image stamp, None when the clocks disagree;
        ``busy_ms`` / ``busy_cpu_ms`` = the worker's wall / thread CPU time on the frame, all stages."""
        now = time.monotonic()
        self.output_rate.tick(now)
        self.processing.add(processing_ms)
        if busy_ms is not None:
            self.busy.add(busy_ms)
        if busy_cpu_ms is not None:
            self.busy_cpu.add(busy_cpu_ms)
        if gap_ms is not None:
            self.latency.add(gap_ms)
        with self._lock:
            self.frames_published += 1
            self._cpu_marks.append(time.process_time())
            if gap_ms is None:
                self.off_clock_frames += 1
            self._outcomes.append((now, mode, True))
            for k, v in timings_ms.items():
                stats = self._stages.get(k)
                if stats is None and len(self._stages) < 32:
                    stats = self._stages[k] = pl.RollingStats(300)
                if stats is not None:
                    stats.add(v)

    def not_published(self, mode: str, reason: str) -> None:
        with self._lock:
            self._outcomes.append((time.monotonic(), mode, False))
            self.frames_not_published += 1
            self.last_not_published = reason

    def image_rejected(self, cause: str, text: str) -> None:
        if cause not in IMAGE_REJECTIONS:
            raise ValueError(f"unknown image rejection cause {cause!r}")
        with self._lock:
            self._rejections[cause] += 1
            self._last_rejection = (time.monotonic(), f"{cause}: {text}")

    # ---------------------------------------------------------------- readers
    def recent_image_rejection(self, window_s: float) -> str:
        """``"cause: text"`` of the last image rejection within ``window_s``, else "" (cheap: per frame)."""
        with self._lock:
            t, text = self._last_rejection
        return text if time.monotonic() - t <= window_s else ""

    def snapshot(self, window_s: float) -> StatsSnapshot:
        now = time.monotonic()
        with self._lock:
            outcomes = [(mode, ok) for t, mode, ok in self._outcomes if now - t <= window_s]
            recent = [mode for mode, ok in outcomes if ok]
            t_rej, rej = self._last_rejection
            stages = dict(self._stages)
            marks = list(self._cpu_marks)
            snap = StatsSnapshot(
                published_by_mode=dict(Counter(recent)),
                not_published_in_window=len(outcomes) - len(recent),
                newest_published_mode=recent[-1] if recent else "none",
                image_rejections=dict(self._rejections),
                recent_image_rejection=rej if now - t_rej <= window_s else "",
                stage_p50_ms={},
                frames_published=self.frames_published,
                frames_not_published=self.frames_not_published,
                last_not_published=self.last_not_published,
                off_clock_frames=self.off_clock_frames,
            )
        snap.stage_p50_ms.update({k: s.percentiles((50,))[50] for k, s in stages.items()})
        busy = self.busy.percentiles((50, 99))
        snap.busy_ms.update({"p50": busy[50], "p99": busy[99], "mean": self.busy.mean()})
        cpu = (marks[-1] - marks[0]) / (len(marks) - 1) * 1e3 if len(marks) >= 2 else float("nan")
        return replace(
            snap, busy_cpu_p50_ms=self.busy_cpu.percentiles((50,))[50], process_cpu_per_frame_ms=cpu
        )


def timing_values(snap: StatsSnapshot) -> dict[str, float]:
    """The frame budget as ``/diagnostics`` values (see the module docstring)."""
    values = {f"stage_{stage}_p50_ms": ms for stage, ms in snap.stage_p50_ms.items()}
    mean = snap.busy_ms.get("mean", float("nan"))
    values.update({
        "worker_busy_p50_ms": snap.busy_ms.get("p50", float("nan")),
        "worker_busy_p99_ms": snap.busy_ms.get("p99", float("nan")),
        "worker_busy_mean_ms": mean,
        "worker_cpu_p50_ms": snap.busy_cpu_p50_ms,
        "process_cpu_per_frame_ms": snap.process_cpu_per_frame_ms,
        "sustainable_rate_hz": 1e3 / mean if mean > 0 else float("nan"),
    })  # fmt: skip
    return values
