"""``depth-nodes model import``: a published checkpoint -> a model directory (config.json + model.safetensors).

The checkpoint is read by :mod:`depth_nodes.models.checkpoint` (never executed). Accepted: the official training
container ``{'epoch', 'model', 'best_result', 'optimizer', 'args'}`` (legacy or zip), ``{'state_dict': ...}``,
or a bare state dict; ``module.`` prefixes (DataParallel) are stripped. Keys and shapes must equal the family's
exactly (strict), and the recorded ``args`` must not name another network. Written beside the weights:
``provenance.json`` (source file name and sha256, layout, epoch, the recorded args and best result).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_nodes.models.checkpoint import Record, TensorRef, read_raw
from depth_nodes.runtime.errors import ModelError

PROVENANCE_FILE = "provenance.json"


@dataclass
class Checkpoint:
    state: dict[str, Any]  # key -> torch.Tensor
    layout: str
    epoch: int | None = None
    args: dict[str, Any] = field(default_factory=dict)
    best_result: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def _plain(v: Any) -> Any:
    """JSON-safe copy of a recorded value (records -> their fields, tensors -> a description)."""
    if isinstance(v, Record):
        return _plain(v.fields())
    if isinstance(v, TensorRef):
        return f"<tensor {list(v.size)}>"
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)[:200]


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The state dict (torch tensors) and the recorded metadata of a checkpoint, without executing it."""
    raw = read_raw(path)
    obj = raw.obj
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        sd, meta = obj["model"], obj
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        sd, meta = obj["state_dict"], obj
    elif isinstance(obj, dict) and obj and all(isinstance(v, TensorRef) for v in obj.values()):
        sd = obj
    else:
        kind = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else type(obj).__name__
        raise ModelError(f"{path}: no state dict found ({kind}; expected 'model', 'state_dict' or tensors)")
    state = {}
    for key, ref in sd.items():
        if not isinstance(key, str) or not isinstance(ref, TensorRef):
            raise ModelError(f"{path}: state dict entry {key!r} is a {type(ref).__name__}, not a tensor")
        state[key[len("module.") :] if key.startswith("module.") else key] = raw.tensor(ref)
    epoch = meta.get("epoch")
    args = meta.get("args")
    best = meta.get("best_result")
    return Checkpoint(
        state=state,
        layout=raw.layout,
        epoch=epoch if type(epoch) is int else None,
        args=_plain(args.fields() if isinstance(args, Record) else args if isinstance(args, dict) else {}),
        best_result=_plain(best.fields() if isinstance(best, Record) else {}),
        ignored=sorted(str(k) for k in meta if k not in ("model", "state_dict", "epoch", "args", "best_result")),
    )


def _check_args(family: str, args: dict[str, Any]) -> None:
    from depth_nodes.models.published import PUBLISHED

    want = PUBLISHED[family][3]
    bad = {k: args[k] for k, v in want.items() if k in args and args[k] != v}
    enc = args.get("convolutional_layer_encoding", "xyz")
    if bad or enc != "xyz":
        raise ModelError(
            f"the checkpoint's recorded args {bad or {'convolutional_layer_encoding': enc}} are not those of "
            f"{family!r} ({want}, convolutional_layer_encoding 'xyz')"
        )


def import_checkpoint(family: str, source: str | Path, out_dir: str | Path, params: dict | None = None) -> dict:
    """Write ``out_dir`` (config.json, model.safetensors, provenance.json); returns the provenance."""
    import torch

    from depth_nodes import models
    from depth_nodes.models.published import PUBLISHED
    from depth_nodes.runtime.onnx_io import sha256_file

    if family not in PUBLISHED:
        raise ModelError(f"model import knows {', '.join(PUBLISHED)}; got {family!r}")
    ckpt = read_checkpoint(source)
    _check_args(family, ckpt.args)
    with torch.device("meta"):  # shapes only: no 130 M parameter initialisation
        model = models.create(family, params or {})
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(want) - set(ckpt.state))
    extra = sorted(set(ckpt.state) - set(want))
    shapes = [f"{k} {tuple(ckpt.state[k].shape)} != {want[k]}" for k in want if k in ckpt.state
              and tuple(ckpt.state[k].shape) != want[k]]  # fmt: skip
    if missing or extra or shapes:
        hint = ""
        if family == "penet" and any(k.startswith("rgb_conv_init") for k in ckpt.state):
            hint = " (this looks like an ENet checkpoint: `model import enet`)"
        elif family == "enet" and any(k.startswith("backbone.") for k in ckpt.state):
            hint = " (this looks like a PENet checkpoint: `model import penet`)"
        raise ModelError(
            f"{source} does not hold the {family!r} weights{hint}: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(extra)} unexpected (e.g. {extra[:3]}), {len(shapes)} of another shape {shapes[:2]}"
        )
    model.load_state_dict(ckpt.state, strict=True, assign=True)
    if family == "penet":  # the fixed CSPN kernels are part of the maths: they must be the official one-hot ones
        from depth_nodes.models.penet_blocks import one_hot_kernels

        for ks in (3, 5, 7):
            if not torch.equal(getattr(model, f"encoder{ks}").detach(), one_hot_kernels(ks)):
                raise ModelError(f"{source}: encoder{ks} is not the official fixed one-hot CSPN kernel")
    out = models.save(model, out_dir)
    prov = {
        "family": family,
        "source": Path(source).name,
        "source_sha256": sha256_file(source),
        "layout": ckpt.layout,
        "epoch": ckpt.epoch,
        "args": ckpt.args,
        "best_result": ckpt.best_result,
        "ignored_entries": ckpt.ignored,
        "n_tensors": len(ckpt.state),
        "n_values": int(sum(t.numel() for t in ckpt.state.values())),
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    return prov
