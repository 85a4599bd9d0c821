"""The guided / lidar_memory / lidar_only / monocular / none mode state machine with hysteresis."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

GUIDED = "guided"
#: Camera + the remembered LiDAR scans carried to the image (the LiDAR dropped; ``pipeline.memory_mode``).
LIDAR_MEMORY = "lidar_memory"
LIDAR_ONLY = "lidar_only"
MONOCULAR = "monocular"
NONE = "none"
MODES = (GUIDED, LIDAR_MEMORY, LIDAR_ONLY, MONOCULAR, NONE)
#: Transitions kept in :attr:`ModeMachine.history` (the node runs for months: nothing may grow without bound).
HISTORY_SIZE = 64


@dataclass(frozen=True)
class Transition:
    """A mode change: ``old`` -> ``new`` because of ``reason``."""

    old: str
    new: str
    reason: str


class ModeMachine:
    """guided / lidar_memory / lidar_only / monocular / none with hysteresis.

    Each frame (or staleness tick) proposes the mode its inputs allow; the machine switches only after
    ``hysteresis`` consecutive proposals of the same new mode. Leaving ``none`` (start-up, or nothing
    arriving at all) is immediate: any usable input beats none, and the first good frame is published.
    """

    def __init__(self, hysteresis: int = 3, on_transition: Callable[[Transition], None] | None = None):
        if hysteresis < 1:
            raise ValueError("mode hysteresis must be >= 1 frame")
        self.hysteresis = int(hysteresis)
        self.mode = NONE
        self.reason = "no input yet"
        self._candidate: str | None = None
        self._count = 0
        self._lock = threading.Lock()
        self._on_transition = on_transition
        #: The last :data:`HISTORY_SIZE` transitions as ``(wall time s, new mode, reason)``.
        self.history: deque[tuple[float, str, str]] = deque(maxlen=HISTORY_SIZE)
        self.n_transitions = 0

    def propose(self, mode: str, reason: str) -> str:
        """Record one proposal; returns the (possibly new) current mode."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        with self._lock:
            transition = None
            if mode == self.mode:
                self._candidate, self._count = None, 0
                self.reason = reason
            else:
                if mode != self._candidate:
                    self._candidate, self._count = mode, 0
                self._count += 1
                if self._count >= self.hysteresis or self.mode == NONE:
                    transition = Transition(self.mode, mode, reason)
                    self.mode, self.reason = mode, reason
                    self._candidate, self._count = None, 0
                    self.history.append((time.time(), mode, reason))
                    self.n_transitions += 1
            current = self.mode
        if transition is not None and self._on_transition is not None:
            self._on_transition(transition)
        return current
