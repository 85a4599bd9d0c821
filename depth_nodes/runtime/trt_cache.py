"""The TensorRT engine cache: engines keyed by what makes them valid, written atomically, built once.

Key = ONNX sha256 + GPU name + compute capability + TensorRT version + precision + optimization-profile shapes
(+ the calibration frames' hash for INT8). An engine file ``<model>-<precision>-<key hash>.engine`` sits beside
``.json`` with the full key; a lookup recomputes the key, so a different ONNX, GPU, TensorRT, precision or
profile set simply misses and is rebuilt (the files of other keys are left alone for other configurations).

Writers hold an exclusive ``fcntl`` lock on ``<engine>.lock`` while building and look again once they hold it
(another builder may have finished meanwhile: it is then loaded, not rebuilt). Files are written to a temporary
name in the same directory, fsync'ed and ``os.replace``d, engine first and key last, so a reader never sees a
half-written engine and a crash mid-build leaves no entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from depth_nodes.runtime.errors import EngineError

KEY_VERSION = 1


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    gpu_name: str
    compute_capability: str  # "8.7"
    trt_version: str
    precision: str
    profiles: tuple  # JSON-able nested lists, see Profile.key()
    calib_sha256: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d["profiles"] = json.loads(json.dumps(self.profiles))
        d["key_version"] = KEY_VERSION
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def diff(self, other: dict) -> list[str]:
        """Names of the key fields that differ from a stored key dict."""
        mine = self.as_dict()
        return [k for k in mine if mine[k] != other.get(k)]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class EngineCache:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory).expanduser()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineError(f"engine_cache_dir {self.dir} cannot be created: {exc}") from None

    def engine_path(self, model_name: str, key: EngineKey) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name) or "model"
        return self.dir / f"{safe}-{key.precision}-{key.digest()[:16]}.engine"

    @staticmethod
    def key_path(engine: Path) -> Path:
        return engine.with_suffix(".json")

    def lookup(self, model_name: str, key: EngineKey) -> Path | None:
        """The cached engine for ``key`` when its stored key matches exactly, else None."""
        p = self.engine_path(model_name, key)
        kp = self.key_path(p)
        if not (p.is_file() and kp.is_file()):
            return None
        try:
            stored = json.loads(kp.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return p if not key.diff(stored) else None

    def find_like(self, model_name: str, key: EngineKey, ignore: tuple[str, ...]) -> Path | None:
        """A cached engine whose stored key equals ``key`` except the fields in ``ignore`` (newest first)."""
        safe = self.engine_path(model_name, key).name.rsplit("-", 1)[0]
        for kp in sorted(self.dir.glob(f"{safe}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                stored = json.loads(kp.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            engine = kp.with_suffix(".engine")
            if engine.is_file() and not [k for k in key.diff(stored) if k not in ignore]:
                return engine
        return None

    def store(self, model_name: str, key: EngineKey, plan: bytes) -> Path:
        p = self.engine_path(model_name, key)
        atomic_write(p, plan)
        atomic_write(self.key_path(p), json.dumps(key.as_dict(), indent=2, sort_keys=True).encode())
        return p

    def invalidate(self, engine: Path) -> None:
        for q in (self.key_path(engine), engine):
            with contextlib.suppress(FileNotFoundError):
                q.unlink()

    @contextlib.contextmanager
    def lock(self, engine: Path) -> Iterator[None]:
        """Exclusive inter-process lock for building ``engine`` (blocks while another builder holds it)."""
        with open(engine.with_suffix(".lock"), "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def timing_cache_path(self, gpu_name: str, trt_version: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{gpu_name}-{trt_version}")
        return self.dir / f"timing-{safe}.cache"
