"""The TensorRT engine cache: engines keyed by what makes them valid, written atomically, built once.

Key = ONNX fingerprint (sha256 of the file and of every external-weights file it references) + GPU name (Jetson
boards told apart) + compute capability + TensorRT version + precision + optimization-profile shapes + workspace
size + the tool that converted the ONNX to fp16/int8 (ModelOpt and onnxconverter-common make different graphs)
(+ the calibration frames' hash for INT8). An engine file ``<model>-<precision>-<key hash>.engine`` sits beside
``.json`` with the full key; a lookup recomputes the key, so a different ONNX, GPU, TensorRT, precision or
profile set simply misses and is rebuilt (the files of other keys are left alone for other configurations).

Writers hold an exclusive ``fcntl`` lock on ``<engine>.lock`` while building and look again once they hold it
(another builder may have finished meanwhile: it is then loaded, not rebuilt). Files are written to a temporary
name in the same directory, fsync'ed and ``os.replace``d, engine first and key last, so a reader never sees a
half-written engine and a crash mid-build leaves no entry. Files are 0644 (``mkstemp`` makes 0600, which
other users of a shared cache could not read).

An engine plan is executable code (TensorRT runs its kernels): the cache directory must not be world-writable
nor owned by another user, and an entry is loaded only when owned by this user or root and not world-writable;
anything else is an :class:`EngineError` saying whose file it is and what to do, never a bare PermissionError.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from depth_nodes.runtime.errors import EngineError

KEY_VERSION = 2
FILE_MODE = 0o644


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    gpu_name: str
    compute_capability: str  # "8.7"
    trt_version: str
    precision: str
    profiles: tuple  # JSON-able nested lists, see Profile.key()
    calib_sha256: str = ""
    workspace_bytes: int = 0
    converter: str = ""  # the fp16/int8 ONNX conversion tool + version ('' = the ONNX as given)

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
        os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 would lock other users of a shared cache out
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def onnx_fingerprint(onnx_path: Path) -> str:
    """sha256 over the ONNX file and every external-weights file it references (``model.onnx.data``)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    from depth_nodes.runtime.onnx_io import sha256_file

    h = hashlib.sha256(sha256_file(onnx_path).encode())
    model = onnx.load(str(onnx_path), load_external_data=False)
    files = sorted({ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)})
    for loc in files:
        f = onnx_path.parent / loc
        if not f.is_file():
            raise EngineError(f"{onnx_path.name} keeps its weights in {loc}, which is missing next to it")
        h.update(f"{loc}:{sha256_file(f)}".encode())
    return h.hexdigest()


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def check_trusted(path: Path, what: str) -> None:
    """:class:`EngineError` unless ``path`` is owned by this user or root and not world-writable."""
    try:
        st = path.stat()
    except PermissionError:
        raise EngineError(
            f"{what} {path} cannot be accessed by {_user(os.geteuid())} (a directory above it is private to another "
            "user): set engine_cache_dir to a directory of your own"
        ) from None
    if not _trusted_owner(st.st_uid):
        raise EngineError(
            f"{what} {path} belongs to {_user(st.st_uid)}, not to you ({_user(os.geteuid())}) or root: an engine "
            "plan is executable code, so depth_nodes loads only engines of its own user. Delete it (as its owner) "
            "or set engine_cache_dir to a directory of your own"
        )
    if st.st_mode & stat.S_IWOTH:
        raise EngineError(
            f"{what} {path} is world-writable (mode {stat.S_IMODE(st.st_mode):04o}): anyone could replace the "
            f"engine (executable code). chmod o-w {path}, or use a private engine_cache_dir"
        )


def read_trusted(path: Path, what: str = "engine cache file") -> bytes:
    """The bytes of a cache file after :func:`check_trusted`; unreadable -> :class:`EngineError`."""
    check_trusted(path, what)
    try:
        return path.read_bytes()
    except PermissionError:
        st = path.stat()
        raise EngineError(
            f"{what} {path} (owner {_user(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o}) is not readable by "
            f"{_user(os.geteuid())}: written by another user with private permissions (older depth_nodes made "
            f"0600 files). Ask its owner to `chmod 644` it or delete it, or set engine_cache_dir to a directory "
            "of your own"
        ) from None


class EngineCache:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory).expanduser()
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as exc:
            raise EngineError(f"engine_cache_dir {self.dir} cannot be created: {exc}") from None
        check_trusted(self.dir, "engine_cache_dir")

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
            stored = json.loads(read_trusted(kp, "engine cache key"))
        except (OSError, json.JSONDecodeError):
            return None
        return p if not key.diff(stored) else None

    def find_like(self, model_name: str, key: EngineKey, ignore: tuple[str, ...]) -> Path | None:
        """A cached engine whose stored key equals ``key`` except the fields in ``ignore`` (newest first)."""
        safe = self.engine_path(model_name, key).name.rsplit("-", 1)[0]
        for kp in sorted(self.dir.glob(f"{safe}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                stored = json.loads(read_trusted(kp, "engine cache key"))
            except (OSError, json.JSONDecodeError):
                continue
            engine = kp.with_suffix(".engine")
            if engine.is_file() and not [k for k in key.diff(stored) if k not in ignore]:
                return engine
        return None

    def store(self, model_name: str, key: EngineKey, plan: bytes) -> Path:
        p = self.engine_path(model_name, key)
        try:
            atomic_write(p, plan)
            atomic_write(self.key_path(p), json.dumps(key.as_dict(), indent=2, sort_keys=True).encode())
        except PermissionError as exc:
            raise EngineError(
                f"cannot write the engine into engine_cache_dir {self.dir} as {_user(os.geteuid())}: {exc}"
            ) from None
        return p

    def invalidate(self, engine: Path) -> None:
        for q in (self.key_path(engine), engine):
            with contextlib.suppress(FileNotFoundError):
                q.unlink()

    @contextlib.contextmanager
    def lock(self, engine: Path) -> Iterator[None]:
        """Exclusive inter-process lock for building ``engine`` (blocks while another builder holds it)."""
        try:  # read-only is enough for flock, so another user's lock file works too
            fd = os.open(engine.with_suffix(".lock"), os.O_RDONLY | os.O_CREAT, FILE_MODE)
        except PermissionError:
            raise EngineError(f"engine_cache_dir {self.dir} is not writable by {_user(os.geteuid())}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def timing_cache_path(self, gpu_name: str, trt_version: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{gpu_name}-{trt_version}")
        return self.dir / f"timing-{safe}.cache"
