"""Model families by name, their configs (JSON) and weights (safetensors): create, save, load.

A model directory holds ``config.json`` (the family name, its parameters, the I/O contract) and
``model.safetensors`` (weights). Weights are never unpickled: safetensors only, and third-party ``.pt`` /
``.pth`` checkpoints at most through ``torch.load(weights_only=True)`` (:func:`read_state_dict`).

torch is imported only when a model is created or loaded, never by importing this module.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from depth_nodes.runtime.errors import ModelError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FORMAT = "depth_nodes.model/1"

#: ImageNet statistics: what most pretrained encoders expect, and a sane default for our own.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Family:
    """A registered model family: how to build it and its I/O contract (names, units, normalisation)."""

    name: str
    builder: str  # "module:attr" of the nn.Module class, imported lazily
    defaults: dict[str, Any]
    description: str
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    dynamic_hw: bool = True  # H and W may change between frames (multiples of the model's stride)


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family (later helpers register theirs here); a name can be registered once."""
    if family.name in _FAMILIES and _FAMILIES[family.name] != family:
        raise ValueError(f"model family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


FUSION_IO_INPUTS = {
    "image": {
        "layout": "NCHW",
        "units": "RGB / 255, then (x - mean) / std",
        "normalisation": {"scale": 1.0 / 255.0, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    },
    "sparse_inv_depth": {"layout": "NCHW", "units": "1/m, 0 = no LiDAR return"},
}
FUSION_IO_OUTPUTS = {
    "depth": {"layout": "NCHW", "units": "m"},
    "confidence": {"layout": "NCHW", "units": "0..1"},
}

register(
    Family(
        name="tiny_unet",
        builder="depth_nodes.models.tiny_unet:TinyFusionUNet",
        defaults={"width": 16, "levels": 3, "min_depth_m": 1.0, "max_depth_m": 120.0},
        description="tiny early-fusion U-Net (RGB + sparse inverse depth -> depth + confidence)",
        inputs=FUSION_IO_INPUTS,
        outputs=FUSION_IO_OUTPUTS,
    )
)


def available() -> dict[str, str]:
    """Registered family names with one-line descriptions."""
    return {name: f.description for name, f in sorted(_FAMILIES.items())}


def family(name: str) -> Family:
    if name not in _FAMILIES:
        raise ModelError(f"unknown model family {name!r}; registered: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def full_config(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The complete config of family ``name`` with ``params`` over its defaults (unknown keys rejected)."""
    fam = family(name)
    params = dict(params or {})
    unknown = sorted(set(params) - set(fam.defaults))
    if unknown:
        raise ModelError(
            f"model {name!r} has no parameter(s) {', '.join(unknown)}; parameters: {', '.join(fam.defaults)}"
        )
    return {
        "format": CONFIG_FORMAT,
        "model": name,
        "params": {**fam.defaults, **params},
        "inputs": copy.deepcopy(fam.inputs),
        "outputs": copy.deepcopy(fam.outputs),
        "dynamic_hw": fam.dynamic_hw,
    }


def config_hash(config: dict[str, Any]) -> str:
    """sha256 (hex, first 16) of the canonical JSON of a config: the ONNX/engine metadata ties back to it."""
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def create(name: str, config: dict[str, Any] | None = None):
    """A freshly initialised ``torch.nn.Module`` of family ``name``.

    ``config`` is either the family's parameters (``{"width": 8}``) or a full config as written by
    :func:`save`. The module carries its full config as ``model.depth_nodes_config``.
    """
    if config and "params" in config:
        if config.get("model", name) != name:
            raise ModelError(f"config is for model {config.get('model')!r}, not {name!r}")
        params = config["params"]
    else:
        params = config or {}
    cfg = full_config(name, params)
    module_name, attr = family(name).builder.split(":")
    cls = getattr(import_module(module_name), attr)
    try:
        model = cls(**cfg["params"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model {name!r}: bad parameters {cfg['params']}: {exc}") from None
    model.depth_nodes_config = cfg
    return model.eval()


def config_of(model) -> dict[str, Any]:
    cfg = getattr(model, "depth_nodes_config", None)
    if cfg is None:
        raise ModelError("this module was not made by depth_nodes.models.create/load: it has no config")
    return cfg


def save(model, directory: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors`` of ``model`` into ``directory`` (created)."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_of(model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"model": cfg["model"], "config_hash": config_hash(cfg)})
    (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return out


def read_config(directory: str | Path) -> dict[str, Any]:
    """The validated ``config.json`` of a model directory (:class:`ModelError` naming the problem)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"model directory {directory} has no {CONFIG_FILE}")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != CONFIG_FORMAT or "model" not in cfg:
        raise ModelError(f"{path} is not a depth_nodes model config (expected format {CONFIG_FORMAT!r})")
    return cfg


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Tensors of a weights file: ``.safetensors``, or a third-party ``.pt``/``.pth`` with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors / torch raise several unrelated types for a corrupt file
        raise ModelError(f"cannot read weights {path}: {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict")
    return state


def load(directory: str | Path):
    """The model saved in ``directory`` (config + weights; strict: every tensor must match)."""
    cfg = read_config(directory)
    model = create(cfg["model"], cfg)
    state = read_state_dict(Path(directory) / WEIGHTS_FILE)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # missing/unexpected keys or shape mismatch
        first = str(exc).strip().splitlines()
        raise ModelError(
            f"weights in {directory} do not match model {cfg['model']!r} {cfg['params']}: "
            + " ".join(first[:3])[:400]
        ) from None
    return model.eval()
