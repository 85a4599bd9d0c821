"""Any ONNX by contract: the sidecar ``model.json`` beside a user's ONNX says what each graph input holds and what
its output means; :func:`load_contract` parses it and checks it against the graph, with errors naming the field.

Format (JSON; every key below is checked, unknown keys are errors -- a typo must not be silently ignored)::

    {"format": "depth_nodes.onnx_contract/1",
     "name": "penet",                            # diagnostics name (default: the directory's name)
     "onnx": "model.onnx",                       # beside model.json (default)
     "inputs": {                                 # one entry per graph input, by its name in the graph
       "rgb":      {"source": "image", "layout": "NCHW", "units": "0..255"},
       "d":        {"source": "depth", "layout": "NCHW", "units": "metres"},
       "position": {"source": "position", "layout": "NCHW", "units": "uv_-1..1"},
       "K":        {"source": "intrinsics", "units": "pixels"}},
     "outputs": {"output": {"kind": "metric"}},  # exactly one depth output; optional {"kind": "confidence"}
     "size": {"stride": 32}}                     # or {"fixed": [H, W], "fit": "pad" | "resize"}

Inputs (``source`` -> allowed ``units``; 4-D inputs take ``layout`` NCHW / NHWC):

- ``image``: ``0..255`` or ``0..1``; optional ``mean`` / ``std`` (3 values each, in those units) subtracted /
  divided after scaling; optional ``channels`` ``rgb`` (default) / ``bgr``;
- ``depth`` (the projected LiDAR, 0 = no return): ``metres`` or ``inverse_depth`` (1/m);
- ``position``: ``uv_-1..1``, 2 channels u, v = ``2 * index / (size - 1) - 1`` over the camera image at the
  network's scale (ENet/PENet's ``AddCoordsNp``; padding continues the ramp);
- ``intrinsics``: ``pixels``, K (3x3 or 1x3x3) of the network input (scaled with a resize, unchanged by padding).

Outputs (``kind``): ``metric`` (m), ``inverse`` (1/m), ``relative`` (affine-invariant inverse depth, as Depth
Anything V2 relative / MiDaS: scale and shift fitted to the frame's LiDAR with :mod:`depth_nodes.core.scale_fit`),
``confidence`` (0..1, optional). Size: ``stride`` pads H, W (bottom / right, replicated image) up to a multiple and
crops the output back; ``fixed`` with ``fit: pad`` pads to exactly [H, W] (a larger camera is an error), with
``fit: resize`` resizes to it (image: area / linear; LiDAR depth re-scattered, nearest return wins) and resizes
the output back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_nodes.runtime.errors import ModelError

CONTRACT_FILE = "model.json"
FORMAT = "depth_nodes.onnx_contract/1"
UNITS = {
    "image": ("0..255", "0..1"),
    "depth": ("metres", "inverse_depth"),
    "position": ("uv_-1..1",),
    "intrinsics": ("pixels",),
}
CHANNELS = {"image": 3, "depth": 1, "position": 2}
LAYOUTS = ("NCHW", "NHWC")
OUTPUT_KINDS = ("metric", "inverse", "relative", "confidence")
FITS = ("pad", "resize")
_TOP_KEYS = {"format", "name", "onnx", "inputs", "outputs", "size"}
_INPUT_KEYS = {"source", "layout", "units", "mean", "std", "channels"}


class ContractError(ModelError):
    """A ``model.json`` is malformed or does not match its ONNX graph (the message names the field)."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    source: str
    units: str
    layout: str = "NCHW"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    bgr: bool = False


@dataclass
class Contract:
    path: Path  # the model.json
    onnx_path: Path
    name: str
    inputs: dict[str, InputSpec]
    depth_output: str
    depth_kind: str  # metric | inverse | relative
    confidence_output: str | None = None
    stride: int = 1
    fixed: tuple[int, int] | None = None
    fit: str = "pad"
    graph_inputs: dict[str, tuple] = field(default_factory=dict)

    def needs(self, source: str) -> bool:
        return any(s.source == source for s in self.inputs.values())


def contract_path(model: str | Path) -> Path | None:
    """The ``model.json`` of ``model`` (a directory, a ``model.json`` or an ``.onnx`` beside one), else None."""
    p = Path(model).expanduser()
    if p.is_dir():
        p = p / CONTRACT_FILE
    elif p.suffix == ".onnx":
        p = p.with_name(CONTRACT_FILE)
    return p if p.name == CONTRACT_FILE and p.is_file() else None


def _fail(path: Path, key: str, why: str) -> ContractError:
    return ContractError(f"{path}: {key}: {why}")


def _numbers(path: Path, key: str, v: Any, n: int) -> tuple[float, ...]:
    if not isinstance(v, list) or len(v) != n or not all(isinstance(x, int | float) for x in v):
        raise _fail(path, key, f"needs a list of {n} numbers, got {v!r}")
    return tuple(float(x) for x in v)


def _parse_input(path: Path, name: str, raw: Any) -> InputSpec:
    key = f"inputs.{name}"
    if not isinstance(raw, dict):
        raise _fail(path, key, f"needs an object with source / units / layout, got {raw!r}")
    if extra := set(raw) - _INPUT_KEYS:
        raise _fail(path, f"{key}.{sorted(extra)[0]}", f"unknown key (known: {', '.join(sorted(_INPUT_KEYS))})")
    source = raw.get("source")
    if source not in UNITS:
        raise _fail(path, f"{key}.source", f"{source!r} is not one of {', '.join(UNITS)}")
    units = raw.get("units")
    if units not in UNITS[source]:
        raise _fail(path, f"{key}.units", f"unknown unit {units!r} for a {source} input; use {' or '.join(UNITS[source])}")
    layout = raw.get("layout", "NCHW")
    if source != "intrinsics" and layout not in LAYOUTS:
        raise _fail(path, f"{key}.layout", f"{layout!r} is not one of {', '.join(LAYOUTS)}")
    spec = InputSpec(name, source, units, layout if source != "intrinsics" else "")
    if source == "image":
        mean = _numbers(path, f"{key}.mean", raw["mean"], 3) if "mean" in raw else spec.mean
        std = _numbers(path, f"{key}.std", raw["std"], 3) if "std" in raw else spec.std
        if min(std) <= 0:
            raise _fail(path, f"{key}.std", f"must be > 0, got {list(std)}")
        channels = raw.get("channels", "rgb")
        if channels not in ("rgb", "bgr"):
            raise _fail(path, f"{key}.channels", f"{channels!r} is not rgb or bgr")
        spec = InputSpec(name, source, units, layout, mean, std, channels == "bgr")
    elif {"mean", "std", "channels"} & set(raw):
        raise _fail(path, key, "mean / std / channels apply to an image input only")
    return spec


def _parse_size(path: Path, raw: Any) -> tuple[int, tuple[int, int] | None, str]:
    if not isinstance(raw, dict) or not ({"stride", "fixed"} & set(raw)) or set(raw) - {"stride", "fixed", "fit"}:
        raise _fail(path, "size", f'needs {{"stride": N}} or {{"fixed": [H, W], "fit": "pad"|"resize"}}, got {raw!r}')
    stride = raw.get("stride", 1)
    if not isinstance(stride, int) or stride < 1:
        raise _fail(path, "size.stride", f"needs a positive integer, got {stride!r}")
    fixed = None
    if "fixed" in raw:
        v = raw["fixed"]
        if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, int) and x > 0 for x in v):
            raise _fail(path, "size.fixed", f"needs [H, W] (positive integers), got {v!r}")
        fixed = (v[0], v[1])
    fit = raw.get("fit", "pad")
    if fit not in FITS:
        raise _fail(path, "size.fit", f"{fit!r} is not one of {', '.join(FITS)}")
    return stride, fixed, fit


def parse_contract(path: Path) -> Contract:
    """``model.json`` -> :class:`Contract` (not yet checked against the graph)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: unreadable JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ContractError(f"{path}: needs a JSON object, got {type(raw).__name__}")
    if raw.get("format") != FORMAT:
        raise _fail(path, "format", f"needs {FORMAT!r}, got {raw.get('format')!r}")
    if extra := set(raw) - _TOP_KEYS:
        raise _fail(path, sorted(extra)[0], f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    ins = raw.get("inputs")
    if not isinstance(ins, dict) or not ins:
        raise _fail(path, "inputs", "needs an object naming each graph input")
    inputs = {n: _parse_input(path, n, v) for n, v in ins.items()}
    if sum(s.source == "image" for s in inputs.values()) > 1 or sum(s.source == "depth" for s in inputs.values()) > 1:
        raise _fail(path, "inputs", "at most one image and one depth input")
    outs = raw.get("outputs")
    if not isinstance(outs, dict) or not outs:
        raise _fail(path, "outputs", 'needs an object, e.g. {"depth": {"kind": "metric"}}')
    depth, conf = [], []
    for n, v in outs.items():
        kind = v.get("kind") if isinstance(v, dict) else None
        if kind not in OUTPUT_KINDS or set(v) != {"kind"}:
            raise _fail(path, f"outputs.{n}.kind", f"{kind!r} is not one of {', '.join(OUTPUT_KINDS)} (only key: kind)")
        (conf if kind == "confidence" else depth).append((n, kind))
    if len(depth) != 1 or len(conf) > 1:
        raise _fail(path, "outputs", f"needs exactly one metric / inverse / relative output and at most one "
                                     f"confidence, got {outs}")  # fmt: skip
    stride, fixed, fit = _parse_size(path, raw.get("size", {"stride": 1}))
    onnx = path.parent / str(raw.get("onnx", "model.onnx"))
    name = str(raw.get("name") or path.parent.name)
    return Contract(path, onnx, name, inputs, depth[0][0], depth[0][1], conf[0][0] if conf else None, stride, fixed, fit)


def _check_graph(c: Contract) -> None:
    from depth_nodes.runtime.onnx_io import read_onnx

    info = read_onnx(c.onnx_path)
    missing = [n for n in info.inputs if n not in c.inputs]
    if missing:
        raise _fail(c.path, "inputs", f"graph input {missing[0]!r} of {c.onnx_path.name} is not declared "
                                      f"(graph inputs: {', '.join(info.inputs)})")  # fmt: skip
    for name, spec in c.inputs.items():
        key = f"inputs.{name}"
        if name not in info.inputs:
            raise _fail(c.path, key, f"no graph input of that name in {c.onnx_path.name} "
                                     f"(graph inputs: {', '.join(info.inputs)})")  # fmt: skip
        dims, dtype = info.inputs[name], info.input_dtypes[name]
        if dtype not in ("float", "float16"):
            raise _fail(c.path, key, f"graph input is {dtype}; the contract feeds float32 (or float16)")
        if spec.source == "intrinsics":
            if len(dims) not in (2, 3) or any(isinstance(d, int) and d != 3 for d in dims[-2:]):
                raise _fail(c.path, key, f"graph input has shape {dims}; intrinsics are 3x3 or 1x3x3")
            continue
        if len(dims) != 4:
            raise _fail(c.path, f"{key}.layout", f"graph input has shape {dims}: rank {len(dims)}, {spec.layout} needs 4")
        ch = dims[1] if spec.layout == "NCHW" else dims[3]
        if ch != CHANNELS[spec.source]:  # the channel dim must be fixed at the declared place
            other = "NHWC" if spec.layout == "NCHW" else "NCHW"
            raise _fail(c.path, f"{key}.layout", f"{spec.layout} reads {ch!r} channels from graph shape {dims}; a "
                                                 f"{spec.source} input has {CHANNELS[spec.source]} (is it {other}?)")  # fmt: skip
        hw = dims[1:3] if spec.layout == "NHWC" else dims[2:4]
        if all(isinstance(d, int) for d in hw) and c.fixed != tuple(hw):
            raise _fail(c.path, "size.fixed", f"graph input {name!r} is fixed at {hw[0]}x{hw[1]}; declare "
                                              f'"size": {{"fixed": [{hw[0]}, {hw[1]}]}}')  # fmt: skip
    for n in filter(None, (c.depth_output, c.confidence_output)):
        if n not in info.outputs:
            raise _fail(c.path, f"outputs.{n}", f"no graph output of that name in {c.onnx_path.name} "
                                                f"(graph outputs: {', '.join(info.outputs)})")  # fmt: skip
    c.graph_inputs = dict(info.inputs)


def load_contract(model: str | Path) -> Contract:
    """Parse ``model.json`` of ``model`` and check it against its ONNX (:class:`ContractError` naming the field)."""
    path = contract_path(model)
    if path is None:
        raise ContractError(f"no {CONTRACT_FILE} at {model} (see docs/onnx_contract.md)")
    c = parse_contract(path)
    if not c.onnx_path.is_file():
        raise _fail(path, "onnx", f"{c.onnx_path} does not exist")
    _check_graph(c)
    return c
