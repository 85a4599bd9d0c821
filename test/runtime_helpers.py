"""Shared fixtures of the runtime tests: one small conv model made here, saved and exported once per session."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0 then .[ml])")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[ml]')")

from depth_nodes import models  # noqa: E402
from depth_nodes.runtime.export import export  # noqa: E402

SMALL = {"width": 4, "levels": 2}  # stride 4
EXPORT_HW = (32, 48)


def small_model(seed: int = 0, **params):
    torch.manual_seed(seed)
    return models.create("tiny_unet", {**SMALL, **params})


def constant_depth_model(depth_m: float, confidence: float = 0.5):
    """A model whose output is ``depth_m`` everywhere: zero head weights, the bias sets the inverse depth."""
    m = small_model()
    inv_min, inv_max = m.inv_min, m.inv_max
    s = (1.0 / depth_m - inv_min) / (inv_max - inv_min)
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias[0] = math.log(s / (1 - s))
        m.head.bias[1] = math.log(confidence / (1 - confidence))
    return m


_EXPORTED: dict = {}


def exported_model(tmp_path_factory) -> dict:
    """{"dir": model dir, "onnx": dynamic ONNX, "report": parity report, "model": the torch model}.

    Made once per session (the export takes seconds) whichever test module asks first.
    """
    if _EXPORTED:
        return _EXPORTED
    root: Path = tmp_path_factory.mktemp("runtime_model")
    m = small_model()
    models.save(m, root / "model")
    report = export(m, root / "model.onnx", *EXPORT_HW)
    _EXPORTED.update({"dir": root / "model", "onnx": root / "model.onnx", "report": report, "model": m})
    return _EXPORTED


_CONSTANT: dict = {}
CONSTANT_DEPTH_M = 25.0


def constant_model(tmp_path_factory) -> dict:
    """{"dir", "onnx"} of :func:`constant_depth_model` (25 m, confidence 0.5); the ONNX is made the way a node
    makes it from a directory without ``model.onnx``: exported into the engine cache dir by ``create_backend``."""
    if _CONSTANT:
        return _CONSTANT
    from depth_nodes.runtime import create_backend

    root: Path = tmp_path_factory.mktemp("constant_model")
    models.save(constant_depth_model(CONSTANT_DEPTH_M), root / "model")
    b = create_backend(root / "model", "onnxruntime", engine_cache_dir=root / "cache", resolutions=[EXPORT_HW])
    _CONSTANT.update({"dir": root / "model", "onnx": b.onnx_path, "cache": root / "cache"})
    return _CONSTANT
