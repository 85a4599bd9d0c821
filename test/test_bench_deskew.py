"""``depth-nodes bench deskew``: a deskewed 10 m/s sweep beats the uncompensated one at object edges."""

from __future__ import annotations

import json

import numpy as np
import pytest

from depth_nodes.cli import main as cli_main
from depth_nodes.eval.bench_deskew import edge_mask


def test_edge_mask_marks_depth_jumps_and_silhouettes():
    d = np.full((20, 30), 10.0, np.float32)
    d[5:15, 10:20] = 5.0  # a near box
    d[:2] = 0.0  # sky
    e = edge_mask(d)
    assert e[10, 9] and e[10, 20] and e[4, 15] and e[2, 25]  # box outline, sky line
    assert not e[10, 3] and not e[10, 15] and not e[0].any()  # flat parts, sky itself


def test_bench_deskew_cli(tmp_path, capsys):
    out = tmp_path / "deskew.json"
    args = ["bench", "deskew", "--frames", "1", "--completer", "nearest", "--no-progress", "--json", str(out)]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "| uncompensated |" in text and "| deskewed (odometry twist) |" in text
    res = json.loads(out.read_text())
    assert res["speed_mps"] == 10.0 and res["frames"] == 1
    v = res["variants"]
    raw, fixed, exact = v["uncompensated"], v["deskewed (odometry twist)"], v["exact"]
    assert raw["edge_returns"] > 1000
    assert fixed["edge_mae_m"] < 0.9 * raw["edge_mae_m"], (fixed, raw)
    assert fixed["edge_outliers_pct"] < raw["edge_outliers_pct"]
    # A constant twist over 100 ms of a gently weaving drive is as good as the true per-point poses.
    assert fixed["edge_mae_m"] == pytest.approx(exact["edge_mae_m"], rel=0.02)
    assert cli_main(["bench", "deskew", "--frames", "0"]) == 1
    assert "--frames must be >= 1" in capsys.readouterr().err
