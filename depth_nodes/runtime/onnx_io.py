"""Reading and checking ONNX files: I/O shapes, depth_nodes metadata, sha256, clear errors for bad files.

Metadata keys written by :mod:`depth_nodes.runtime.export` (all strings, in the ONNX ``metadata_props``):
``depth_nodes.model``, ``depth_nodes.config_hash``, ``depth_nodes.config`` (JSON), ``depth_nodes.inputs`` /
``depth_nodes.outputs`` (JSON: units, layout, input normalisation), ``depth_nodes.dynamic_hw`` (true/false),
``depth_nodes.resolution`` (``HxW`` exported at; the only accepted size when not dynamic), ``depth_nodes.stride``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_nodes.runtime.errors import ModelError

META_PREFIX = "depth_nodes."


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


@dataclass
class OnnxInfo:
    """What the runtime needs to know about an ONNX file."""

    path: Path
    sha256: str
    inputs: dict[str, tuple]  # name -> dims (int, or str for a symbolic dim)
    outputs: dict[str, tuple]
    input_dtypes: dict[str, str]
    opset: int
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.metadata.get(META_PREFIX + "model", self.path.stem)

    @property
    def dynamic_hw(self) -> bool:
        return all(isinstance(d, str) for dims in self.inputs.values() for d in dims[2:4])

    @property
    def stride(self) -> int:
        return int(self.metadata.get(META_PREFIX + "stride", "1"))

    @property
    def resolution(self) -> tuple[int, int] | None:
        """(H, W) the file was exported at, from the metadata (or the fixed input dims)."""
        res = self.metadata.get(META_PREFIX + "resolution")
        if res:
            h, w = res.lower().split("x")
            return int(h), int(w)
        for dims in self.inputs.values():
            if len(dims) == 4 and all(isinstance(d, int) for d in dims[2:]):
                return int(dims[2]), int(dims[3])
        return None

    def json_meta(self, key: str) -> Any:
        raw = self.metadata.get(META_PREFIX + key)
        return json.loads(raw) if raw else None


def _dims(value_info) -> tuple:
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.dim_param else int(d.dim_value) if d.HasField("dim_value") else "?")
    return tuple(out)


def read_onnx(path: str | Path, check: bool = True) -> OnnxInfo:
    """Parse and (optionally) ``onnx.checker``-check ``path``; :class:`ModelError` for a missing/corrupt file."""
    import onnx
    from onnx import TensorProto

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"ONNX file {p} does not exist")
    if p.stat().st_size == 0:
        raise ModelError(f"ONNX file {p} is empty")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends for truncated/corrupt files
        raise ModelError(f"ONNX file {p} is corrupt or truncated: {type(exc).__name__}: {exc}") from None
    if len(model.graph.node) == 0 or len(model.graph.output) == 0:
        raise ModelError(f"ONNX file {p} holds no graph (corrupt, truncated or not an ONNX model)")
    if check:
        try:
            onnx.checker.check_model(model)
        except Exception as exc:
            raise ModelError(f"ONNX file {p} fails onnx.checker: {exc}") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = {i.name: _dims(i) for i in model.graph.input if i.name not in inits}
    dtypes = {
        i.name: TensorProto.DataType.Name(i.type.tensor_type.elem_type).lower()
        for i in model.graph.input
        if i.name not in inits
    }
    outputs = {o.name: _dims(o) for o in model.graph.output}
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    meta = {m.key: m.value for m in model.metadata_props}
    return OnnxInfo(p, sha256_file(p), inputs, outputs, dtypes, opset, meta)


def check_input_shapes(info: OnnxInfo, shapes: dict[str, tuple]) -> None:
    """Raise :class:`ModelError` when a fixed dim of the ONNX does not match the given input shapes."""
    for name, dims in info.inputs.items():
        if name not in shapes:
            continue
        got = tuple(shapes[name])
        if len(got) != len(dims) or any(isinstance(d, int) and d != g for d, g in zip(dims, got, strict=False)):
            res = info.resolution
            extra = f" (exported for {res[0]}x{res[1]} with fixed shapes: re-export at this size)" if res else ""
            raise ModelError(f"{info.path.name}: input {name!r} needs shape {dims}, got {got}{extra}")
        if info.stride > 1 and len(got) == 4 and (got[2] % info.stride or got[3] % info.stride):
            raise ModelError(
                f"{info.path.name}: input {name!r} H x W {got[2]}x{got[3]} must be multiples of {info.stride}"
            )
