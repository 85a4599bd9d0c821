"""Read a ``torch.save`` checkpoint (legacy non-zip pickle or zip) WITHOUT executing it.

Why our own reader: ``torch.load(weights_only=True)`` refuses the official ENet/PENet containers (they hold an
``argparse.Namespace`` and the authors' ``metrics.Result``), and any other way of loading them runs whatever the
pickle names. Here a :class:`pickle.Unpickler` subclass resolves globals through an allowlist only
(:data:`ALLOWED`): tensor/storage rebuild functions map to *our* functions that build inert
:class:`TensorRef` / :class:`StorageRef` records after checking every argument's type, ``OrderedDict`` builds a
plain ordered dict, the known foreign classes become inert :class:`Record` s, and any other global raises
:class:`UnsafeCheckpointError` naming it (``posix.system``, ``builtins.eval``, ...) before anything is called.
Tensors are made afterwards from the raw storage bytes (``numpy.frombuffer`` + bounds-checked strides), only for
the state dict that is asked for.

Layouts: zip (``<prefix>/data.pkl`` + ``<prefix>/data/<key>`` records, ``byteorder``) and PyTorch's legacy
format (pickles: magic number, protocol version, sys_info, the object, the storage keys; then per key an int64
element count and the raw bytes).
"""

from __future__ import annotations

import io
import mmap
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depth_nodes.runtime.errors import ModelError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool",
}  # fmt: skip
#: foreign classes of known checkpoints, turned into inert records (never imported)
INERT_CLASSES = {("argparse", "Namespace"), ("metrics", "Result")}


class UnsafeCheckpointError(ModelError):
    """The pickle names something outside the allowlist: nothing of it was run."""


class CheckpointError(ModelError):
    """The file is not a checkpoint this reader understands (corrupt, truncated, another layout)."""


class _Frozen(type):
    """Metaclass of the inert record classes: a pickle cannot set attributes on the class itself."""

    def __setattr__(cls, name, value):
        raise UnsafeCheckpointError(f"the pickle tries to set attribute {name!r} on class {cls.__qualname__}")


class Record(metaclass=_Frozen):
    """An instance of a foreign class (e.g. ``argparse.Namespace``), kept as data: its class name and state."""

    __slots__ = ("cls_name", "args", "state")
    cls_name_default = ""

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, "cls_name", cls.cls_name_default)
        object.__setattr__(obj, "args", args)
        object.__setattr__(obj, "state", None)
        return obj

    def __init__(self, *args, **kwargs) -> None:  # a REDUCE calls the class: nothing to do
        pass

    def __setstate__(self, state) -> None:
        object.__setattr__(self, "state", state)

    def fields(self) -> dict[str, Any]:
        st = self.state[0] if isinstance(self.state, tuple) and self.state else self.state
        return dict(st) if isinstance(st, dict) else {}


class _Inert:
    """Base of objects a pickle must not modify (BUILD on them is refused)."""

    __slots__ = ()

    def __setstate__(self, state) -> None:
        raise UnsafeCheckpointError(f"the pickle tries to modify a {type(self).__name__} (BUILD)")


class StorageType(_Inert):
    """What ``torch.FloatStorage`` & co. resolve to: a dtype marker, only valid inside a storage record."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __call__(self, *args, **kwargs):
        raise UnsafeCheckpointError(f"the pickle calls torch.{self.name}: allowed only as a storage type")


class StorageRef(_Inert):
    __slots__ = ("key", "dtype", "numel", "elem_offset")

    def __init__(self, key: str, dtype: str, numel: int, elem_offset: int = 0) -> None:
        for k, v in (("key", key), ("dtype", dtype), ("numel", numel), ("elem_offset", elem_offset)):
            object.__setattr__(self, k, v)


class TensorRef(_Inert):
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: StorageRef, offset: int, size: tuple, stride: tuple) -> None:
        for k, v in (("storage", storage), ("offset", offset), ("size", size), ("stride", stride)):
            object.__setattr__(self, k, v)


def _ints(x, what: str) -> tuple[int, ...]:
    if not isinstance(x, (tuple, list)) or not all(type(v) is int for v in x):
        raise UnsafeCheckpointError(f"tensor {what} must be a tuple of ints, got {type(x).__name__}")
    return tuple(x)


class _Call(_Inert):
    """An allowlisted callable: our own function under the global's name; its arguments are type-checked."""

    __slots__ = ("qualname", "fn")

    def __init__(self, qualname: str, fn) -> None:
        object.__setattr__(self, "qualname", qualname)
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise UnsafeCheckpointError(f"{self.qualname} called with keyword arguments")
        try:
            return self.fn(*args)
        except TypeError as exc:  # wrong arity
            raise UnsafeCheckpointError(f"{self.qualname} called with unexpected arguments: {exc}") from None


def _rebuild_tensor(storage, offset, size, stride, *rest) -> TensorRef:
    """``torch._utils._rebuild_tensor(_v2)``: (storage, storage_offset, size, stride[, requires_grad,
    backward_hooks[, metadata]]); requires_grad / hooks / metadata are ignored (weights only)."""
    if not isinstance(storage, StorageRef):
        raise UnsafeCheckpointError(f"tensor rebuilt from a {type(storage).__name__}, not a storage record")
    if type(offset) is not int or offset < 0:
        raise UnsafeCheckpointError(f"tensor storage offset must be an int >= 0, got {offset!r}")
    if len(rest) > 3:
        raise UnsafeCheckpointError("_rebuild_tensor_v2 called with too many arguments")
    return TensorRef(storage, offset, _ints(size, "size"), _ints(stride, "stride"))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state) -> TensorRef:
    if not isinstance(data, TensorRef):
        raise UnsafeCheckpointError(f"parameter rebuilt from a {type(data).__name__}, not a tensor")
    return data


def _ordered_dict(*args):
    if len(args) > 1 or (args and not isinstance(args[0], (list, tuple, dict))):
        raise UnsafeCheckpointError("collections.OrderedDict called with something other than pairs")
    return OrderedDict(*args)


#: (module, name) -> what the pickle gets instead of the real object
ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _Call("collections.OrderedDict", _ordered_dict),
    ("torch._utils", "_rebuild_tensor"): _Call("torch._utils._rebuild_tensor", _rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Call("torch._utils._rebuild_tensor_v2", _rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Call("torch._utils._rebuild_parameter", _rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Call(
        "torch._utils._rebuild_parameter_with_state", _rebuild_parameter
    ),
    **{("torch", name): StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class SafeUnpickler(pickle.Unpickler):
    """Resolves globals through :data:`ALLOWED` only and storages to :class:`StorageRef` records."""

    def __init__(self, file, legacy: bool) -> None:
        super().__init__(file)
        self.legacy = legacy
        self.storages: dict[str, StorageRef] = {}
        # fresh record classes per load: nothing a pickle does to them outlives this reader
        self.inert = {
            mc: _Frozen(mc[1], (Record,), {"__slots__": (), "cls_name_default": ".".join(mc)}) for mc in INERT_CLASSES
        }

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if (module, name) in self.inert:
            return self.inert[(module, name)]
        raise UnsafeCheckpointError(
            f"refusing to load: the pickle names the global {module}.{name}, which is not a tensor, storage or "
            f"known record class (nothing was executed)"
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else type(pid).__name__
            raise UnsafeCheckpointError(f"unsupported persistent record {kind!r} (only storages are read)")
        n = 6 if self.legacy else 5
        if len(pid) != n:
            raise UnsafeCheckpointError(f"storage record of {len(pid)} fields, expected {n}")
        stype, key, _location, numel = pid[1:5]
        if not isinstance(stype, StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise UnsafeCheckpointError(f"malformed storage record {pid[:5]!r}")
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = StorageRef(key, stype.dtype, numel)
        elif ref.dtype != stype.dtype or ref.numel != numel:
            raise UnsafeCheckpointError(f"storage {key!r} is declared twice with different types or sizes")
        view = pid[5] if self.legacy else None
        if view is not None:  # legacy storage view: (view_key, element offset, view size)
            vkey, voff, vsize = view if isinstance(view, tuple) and len(view) == 3 else (None, -1, -1)
            if not isinstance(vkey, str) or type(voff) is not int or type(vsize) is not int or voff < 0 or vsize < 0 \
                    or voff + vsize > numel:  # fmt: skip
                raise UnsafeCheckpointError(f"malformed storage view {view!r}")
            return StorageRef(key, stype.dtype, vsize, voff)
        return ref


@dataclass
class RawCheckpoint:
    """The unpickled object tree (tensors as :class:`TensorRef`) and a reader for storage bytes."""

    obj: Any
    layout: str  # "zip" | "legacy"
    storages: dict[str, StorageRef]
    _read: Any  # (StorageRef root key) -> bytes

    def tensor(self, ref: TensorRef):
        """The torch tensor of ``ref`` (a copy), bounds-checked against its storage."""
        import torch

        st = ref.storage
        if not isinstance(ref, TensorRef) or not isinstance(st, StorageRef):
            raise UnsafeCheckpointError("not a tensor record")
        size, stride = _ints(ref.size, "size"), _ints(ref.stride, "stride")
        if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise UnsafeCheckpointError(f"tensor size {size} / stride {stride} are inconsistent")
        if any(s == 0 for s in size):
            return torch.empty(size, dtype=getattr(torch, st.dtype))
        last = ref.offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= st.numel:
            raise CheckpointError(f"tensor of size {size} reads past its storage {st.key!r} ({st.numel} elements)")
        raw = self._read(st.key)
        item = torch.empty((), dtype=getattr(torch, st.dtype)).element_size()
        root_numel = self.storages[st.key].numel
        if len(raw) != root_numel * item:
            raise CheckpointError(f"storage {st.key!r} holds {len(raw)} bytes, expected {root_numel * item}")
        base = torch.frombuffer(bytearray(raw), dtype=getattr(torch, st.dtype))[st.elem_offset :]
        return torch.as_strided(base, size, stride, ref.offset).clone()


def _load_pickle(f, legacy: bool) -> tuple[Any, SafeUnpickler]:
    up = SafeUnpickler(f, legacy)
    try:
        return up.load(), up
    except (ModelError, RecursionError):
        raise
    except Exception as exc:  # truncated / corrupt pickles raise many types (UnpicklingError, EOFError, ...)
        raise CheckpointError(f"corrupt or truncated pickle: {type(exc).__name__}: {exc}") from None


def _read_zip(path: Path) -> RawCheckpoint:
    zf = zipfile.ZipFile(path)
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise CheckpointError(f"{path.name}: a zip without exactly one <prefix>/data.pkl (not a torch.save file)")
    prefix = pkl[0][: -len("data.pkl")]
    order = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
    if order != "little":
        raise CheckpointError(f"{path.name}: byte order {order!r}; only little-endian checkpoints are read")
    obj, up = _load_pickle(io.BytesIO(zf.read(pkl[0])), legacy=False)

    def read(key: str) -> bytes:
        name = f"{prefix}data/{key}"
        if name not in names:
            raise CheckpointError(f"{path.name}: storage record {name} is missing")
        return zf.read(name)

    return RawCheckpoint(obj, "zip", up.storages, read)


def _read_legacy(path: Path) -> RawCheckpoint:
    with open(path, "rb") as fh:  # mapped, not read: real containers carry ~1 GB of optimizer state we skip
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise CheckpointError(f"{path.name} is empty") from None
    f = data
    magic, _ = _load_pickle(f, legacy=True)
    if magic != LEGACY_MAGIC:
        raise CheckpointError(f"{path.name} is neither a zip nor a legacy torch.save file (magic number {magic!r})")
    proto, _ = _load_pickle(f, legacy=True)
    if proto != LEGACY_PROTOCOL:
        raise CheckpointError(f"{path.name}: legacy protocol version {proto!r}, expected {LEGACY_PROTOCOL}")
    info, _ = _load_pickle(f, legacy=True)
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise CheckpointError(f"{path.name}: only little-endian checkpoints are read (sys_info {info!r})")
    obj, up = _load_pickle(f, legacy=True)
    keys, _ = _load_pickle(f, legacy=True)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CheckpointError(f"{path.name}: malformed storage key list")
    import torch

    spans: dict[str, tuple[int, int]] = {}
    pos = f.tell()
    for key in keys:  # int64 element count, then the raw bytes; skipped here, read on demand
        ref = up.storages.get(key)
        if ref is None:
            raise CheckpointError(f"{path.name}: storage {key!r} listed but never referenced")
        (numel,) = np.frombuffer(data[pos : pos + 8], "<i8") if pos + 8 <= len(data) else (-1,)
        nbytes = int(numel) * torch.empty((), dtype=getattr(torch, ref.dtype)).element_size()
        if numel != ref.numel or pos + 8 + nbytes > len(data):
            raise CheckpointError(f"{path.name}: storage {key!r} is truncated or its size does not match")
        spans[key] = (pos + 8, nbytes)
        pos += 8 + nbytes

    def read(key: str) -> bytes:
        if key not in spans:
            raise CheckpointError(f"{path.name}: storage {key!r} has no data")
        start, n = spans[key]
        return data[start : start + n]

    return RawCheckpoint(obj, "legacy", up.storages, read)


def read_raw(path: str | Path) -> RawCheckpoint:
    """Unpickle ``path`` safely (zip or legacy layout); tensors stay :class:`TensorRef` until asked for."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _read_legacy(path)
