"""ENet / PENet re-implementations against the official network's outputs (shared fixture, weights by its rule).

The official code is not run here: the fixture holds its outputs on a 128 x 448 crop of a real KITTI frame. The
tolerance is the README's: ``max|a - b| <= 1e-4 * max|b|``. PENet goes the user's way: a checkpoint container
(zip) -> ``depth-nodes model import`` -> ``depth-nodes model check``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from published_helpers import JSON, NPZ, need_fixtures, rule_state_dict, save_official_container

torch = pytest.importorskip("torch", reason="torch not installed (pip install '.[ml]')")

from depth_nodes import models  # noqa: E402
from depth_nodes.cli import main  # noqa: E402

REL_TOL = 1e-4


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


@pytest.mark.parametrize("family", ["enet", "penet"])
def test_state_dict_keys_and_shapes_equal_the_official(family: str) -> None:
    need_fixtures()
    spec = json.loads(JSON.read_text())["models"][family]
    with torch.device("meta"):
        sd = models.create(family).state_dict()
    assert [(k, list(v.shape), str(v.dtype)) for k, v in sd.items()] == [
        (e["key"], e["shape"], e["dtype"]) for e in spec["state_dict"]
    ]
    assert sum(v.numel() for v in sd.values()) == spec["n_values"]


def test_enet_all_three_outputs_match_the_official() -> None:
    need_fixtures()
    z = np.load(NPZ)
    model = models.create("enet")
    model.load_state_dict(rule_state_dict("enet"), strict=True)
    with torch.inference_mode():
        outs = model.official(*(torch.from_numpy(z[n]) for n in ("rgb", "d", "position", "K")))
    for name, out in zip(("enet_rgb_depth", "enet_d_depth", "enet"), outs, strict=True):
        rel = _rel(out.numpy(), z[f"expected_{name}"])
        print(f"{name}: max rel diff {rel:.3g}")
        assert rel <= REL_TOL, (name, rel)
    # the outputs are not trivially equal to each other: the fusion weights mix the two branches
    assert _rel(outs[2].numpy(), z["expected_enet_rgb_depth"]) > 1e-3


def test_penet_imported_from_a_container_passes_model_check(tmp_path: Path, capsys) -> None:
    need_fixtures()
    ckpt = save_official_container(tmp_path / "pe.pth.tar", "penet", rule_state_dict("penet"), legacy=False)
    assert main(["model", "import", "penet", str(ckpt), "-o", str(tmp_path / "pe")]) == 0
    prov = json.loads((tmp_path / "pe" / "provenance.json").read_text())
    assert prov["epoch"] == 3 and prov["layout"] == "zip" and prov["args"]["network_model"] == "pe"
    assert len(prov["source_sha256"]) == 64 and prov["n_tensors"] == 447
    ckpt.unlink()  # 0.5 GB
    capsys.readouterr()
    assert main(["model", "check", str(tmp_path / "pe"), "--fixture", str(NPZ)]) == 0
    out = capsys.readouterr().out
    rel = float(out.split("penet: max rel diff ")[1].split()[0])
    print(out)
    assert rel <= REL_TOL and "PASS" in out
    # the check fails when the model is not the one of the fixture
    z = dict(np.load(NPZ))
    z["expected_penet"] = z["expected_penet"] * np.float32(1.001)
    np.savez(tmp_path / "other.npz", **z)
    assert main(["model", "check", str(tmp_path / "pe"), "--fixture", str(tmp_path / "other.npz")]) == 1
    assert "FAIL" in capsys.readouterr().out
