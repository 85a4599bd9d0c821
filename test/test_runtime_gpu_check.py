"""scripts/gpu_check.sh in its reduced CPU mode (what a lent GPU machine runs at full size, CUDA fp32 + fp16)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import small_model

from depth_nodes import models
from depth_nodes.runtime import gpu_check

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # the shipped models on 2 loaded cores: ~20-70 s


def test_gpu_check_script_measures_every_model_and_writes_json_and_markdown(tmp_path) -> None:
    extra = models.save(small_model(), tmp_path / "imported")  # an imported model given with --model
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(["bash", str(REPO / "scripts/gpu_check.sh"), str(tmp_path / "out"), "--reduced",
                        "--iterations", "2", "--model", str(extra)],
                       capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    shipped = {d.name for d in gpu_check.model_dirs([])}
    assert {"learned", "mono_unet"} <= shipped  # every package checkpoint is found
    weights = {row["model"]: row["weights"] for row in result["rows"]}
    assert not result["errors"], result["errors"]
    assert weights["learned"] == weights["mono_unet"] == "shipped" and weights["tiny_unet"] == "imported"
    assert "enet" not in weights  # reduced mode: the 130 M-parameter published nets only with --published yes
    for row in result["rows"]:
        assert row["device"] == "cpu" and row["precision"] == "fp32" and row["size_hw"] == "64x192"
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["n"] == 2
        assert row["parity_vs_cpu_fp32"]["max_abs_m"] == 0.0  # same device, same frame: bit-identical
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert md.count("| cpu | fp32 |") == len(result["rows"]) and "reduced" in md and "| model |" in md


def test_published_families_are_timed_with_seeded_weights_unless_imported(tmp_path) -> None:
    rows = gpu_check.candidates([], published=True)
    assert ("seeded (architecture timing)", "enet") in rows and ("seeded (architecture timing)", "penet") in rows
    assert ("shipped", gpu_check.model_dirs([])[0]) in rows


def test_parity_and_the_budget_are_real(tmp_path) -> None:
    ref = np.array([[10.0, 20.0], [np.nan, 0.0]])
    p = gpu_check.parity(np.array([[10.1, 20.0], [5.0, 7.0]]), ref)  # invalid reference pixels ignored
    assert abs(p["max_abs_m"] - 0.1) < 1e-9 and abs(p["mean_rel"] - 0.005) < 1e-9
    extra = models.save(small_model(), tmp_path / "m")
    rc = gpu_check.main(["--out", str(tmp_path / "o"), "--reduced", "--budget-s", "0", "--model", str(extra)])
    result = json.loads((tmp_path / "o" / "gpu_check.json").read_text())
    assert rc == 1 and not result["rows"] and result["skipped"]  # nothing measured: a failure, not a pass
    assert all("time budget" in s["why"] for s in result["skipped"])
