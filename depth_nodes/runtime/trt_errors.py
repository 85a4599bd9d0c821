"""Which failures of a learned backend are worth retrying (transient) and which end it (permanent).

Transient: the GPU was momentarily short of something -- CUDA out of memory (another process's peak), a kernel
launch that timed out or could not get its resources -- or TensorRT reported such a CUDA error while
executing. The frame is lost but the engine is fine: retry with backoff. Permanent: everything else (a corrupt
or mismatched model/engine, a wrong shape, an illegal memory access, which leaves the CUDA context unusable):
fall back to the classical completer. A new input size the engine has no profile for is neither: the engine
is rebuilt for it (:class:`ProfileMismatchError`).
"""

from __future__ import annotations

from depth_nodes.runtime.errors import EngineError

TRANSIENT = "transient"
PERMANENT = "permanent"
NEW_SIZE = "new_size"

#: substrings of CUDA / TensorRT error texts that mark a transient failure (lower case)
TRANSIENT_MARKERS = (
    "out of memory",
    "cudaerrormemoryallocation",
    "launch timed out",
    "launch failure",
    "too many resources requested for launch",
    "resource unavailable",
    "device or resource busy",
    "cuda-capable device(s) is/are busy",
)
#: ... unless one of these says the CUDA context itself is gone (then nothing on this GPU recovers in-process)
STICKY_MARKERS = ("illegal memory access", "illegal address", "misaligned address", "device-side assert")


class TransientEngineError(EngineError):
    """A CUDA / TensorRT failure that a later try may not hit (out of memory, launch failure)."""


class ProfileMismatchError(EngineError):
    """The input size lies outside every optimization profile of the engine (``size`` = padded H, W)."""

    def __init__(self, message: str, size: tuple[int, int]) -> None:
        super().__init__(message)
        self.size = size


def classify(exc: BaseException) -> str:
    """``transient``, ``permanent`` or ``new_size`` for an exception raised by a backend on a frame."""
    if isinstance(exc, ProfileMismatchError):
        return NEW_SIZE
    if isinstance(exc, TransientEngineError):
        return TRANSIENT
    text = f"{type(exc).__name__}: {exc}".lower()
    if any(m in text for m in STICKY_MARKERS):
        return PERMANENT
    if type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError | MemoryError) and any(m in text for m in TRANSIENT_MARKERS)
    ):
        return TRANSIENT
    return PERMANENT


def is_transient_text(text: str) -> bool:
    t = text.lower()
    return any(m in t for m in TRANSIENT_MARKERS) and not any(m in t for m in STICKY_MARKERS)
