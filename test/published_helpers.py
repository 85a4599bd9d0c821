"""Shared by the ENet / PENet tests: the fixture directory, weights by the fixture README's rule, containers.

The weights are the official state_dict's keys and shapes (from the fixture JSON) filled by the README's rule
(seeded per key), so a re-implementation reproduces the official outputs only if every key, shape and the
maths match. Made once per session (132 M values per model) and kept here.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "penet"
NPZ = FIXTURES / "penet_parity_shared.npz"
JSON = FIXTURES / "penet_parity_shared.json"


def need_fixtures() -> Path:
    if not (NPZ.is_file() and JSON.is_file()):
        pytest.skip(f"ENet/PENet parity fixtures missing: {FIXTURES} (penet_parity_shared.npz/.json)")
    return FIXTURES


def rule_value(key: str, shape: list[int], seed: int) -> np.ndarray:
    """The README's rule for one floating-point tensor."""
    rng = np.random.default_rng((seed * 1000003 + zlib.crc32(key.encode())) % 2**32)
    x = rng.standard_normal(shape)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        x = 0.5 + np.abs(x)
    elif leaf == "running_mean":
        x = 0.1 * x
    elif leaf == "weight" and len(shape) == 1:
        x = 1 + 0.1 * x
    elif leaf == "bias":
        x = 0.01 * x
    else:
        x = x * np.sqrt(1 / np.prod(shape[1:]))
    return x.astype(np.float32)


_STATE: dict = {}


def rule_state_dict(family: str) -> OrderedDict:
    """The official state_dict of ``family`` (enet / penet) with the rule's values (torch tensors)."""
    import torch

    from depth_nodes.models.penet_blocks import one_hot_kernels

    if family in _STATE:
        return _STATE[family]
    spec = json.loads(need_fixtures().joinpath(JSON.name).read_text())
    seed = spec["seed"]
    sd = OrderedDict()
    for e in spec["models"][family]["state_dict"]:
        key, shape = e["key"], e["shape"]
        if e["rule"] == "weights_for":
            sd[key] = torch.from_numpy(rule_value(key, shape, seed))
        elif key.startswith("encoder"):  # fixed one-hot CSPN kernels, "as constructed"
            sd[key] = one_hot_kernels(shape[-1])
        else:  # num_batches_tracked
            assert e["dtype"] == "torch.int64", e
            sd[key] = torch.zeros(shape, dtype=torch.int64)
    _STATE[family] = sd
    return sd


def save_official_container(path: Path, family: str, state: OrderedDict, legacy: bool = True) -> Path:
    """A checkpoint the way the official main.py saves it: epoch, model, optimizer, args (argparse.Namespace)."""
    import torch

    args = argparse.Namespace(
        network_model="e" if family == "enet" else "pe", dilation_rate=2, convolutional_layer_encoding="xyz",
        val_h=352, val_w=1216,
    )  # fmt: skip
    container = {"epoch": 3, "model": state, "optimizer": {"state": {}, "param_groups": []}, "args": args}
    torch.save(container, path, _use_new_zipfile_serialization=not legacy)
    return path


#: the node test scene's camera (test/node_scene.py: 320 x 96, fx = fy = 200, cx = 160, cy = 48)
SCENE_K = "200,200,160,48"
EXPORT_HW = (96, 320)
_IMPORTED: dict = {}


def imported_enet(tmp_path_factory) -> dict:
    """{"dir", "onnx", "report"}: full-size ENet (rule weights) saved as an official legacy container,
    imported with ``depth-nodes model import`` and exported to ``model.onnx`` in the directory.

    The export of a 130 M parameter graph takes a minute or more, so the ONNX is cached in the system temp
    directory under a key of the config, the exporting code and the library versions (a cache hit is copied)."""
    import hashlib
    import shutil
    import tempfile

    import onnx
    import torch

    from depth_nodes import models
    from depth_nodes.cli import main
    from depth_nodes.runtime.export import export

    if _IMPORTED:
        return _IMPORTED
    root = tmp_path_factory.mktemp("enet_import")
    ckpt = save_official_container(root / "e.pth.tar", "enet", rule_state_dict("enet"), legacy=True)
    assert main(["model", "import", "enet", str(ckpt), "-o", str(root / "enet"), "--K", SCENE_K]) == 0
    ckpt.unlink()
    mdir = root / "enet"
    src = Path(__file__).resolve().parents[1] / "depth_nodes"
    key = hashlib.sha256()
    key.update((mdir / "config.json").read_bytes())
    for rel in ("models/enet.py", "models/penet_blocks.py", "runtime/export.py", "runtime/preprocess.py"):
        key.update((src / rel).read_bytes())
    key.update(f"{torch.__version__} {onnx.__version__} {EXPORT_HW}".encode())
    cache = Path(tempfile.gettempdir()) / "depth_nodes_test_cache" / f"enet-{key.hexdigest()[:20]}.onnx"
    report = None
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        for stale in cache.parent.glob("enet-*.onnx"):  # 0.5 GB each: keep only the current key's
            stale.unlink(missing_ok=True)
        report = export(models.load(mdir), root / "model.onnx", *EXPORT_HW)
        shutil.move(str(root / "model.onnx"), cache.with_suffix(".tmp"))
        cache.with_suffix(".tmp").replace(cache)
    shutil.copyfile(cache, mdir / "model.onnx")
    _IMPORTED.update({"dir": mdir, "onnx": mdir / "model.onnx", "report": report})
    return _IMPORTED
