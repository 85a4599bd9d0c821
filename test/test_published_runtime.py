"""An imported full-size ENet directory runs unchanged through the existing machinery on ONNX Runtime:
``depth-nodes eval`` and the depth node (own process, real rclpy). Weights by the fixture's rule, saved as an
official legacy container by the test, imported with ``depth-nodes model import``; small images (96 x 320)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from published_helpers import EXPORT_HW, imported_enet, need_fixtures

pytest.importorskip("torch", reason="torch not installed (pip install '.[ml]')")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[ml]')")

from depth_nodes import models  # noqa: E402
from depth_nodes.cli import main  # noqa: E402
from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend  # noqa: E402
from depth_nodes.runtime.preprocess import Normalisation, crop_outputs, to_inputs_numpy  # noqa: E402

pytestmark = [pytest.mark.slow]  # a 130 M parameter model: export (cached in tmp) and ONNX Runtime sessions


@pytest.fixture(scope="module")
def enet(tmp_path_factory) -> dict:
    need_fixtures()
    return imported_enet(tmp_path_factory)


def _ort_depth(onnx_path: Path, rgb: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    b = OnnxRuntimeBackend(onnx_path)
    b.ensure_loaded()
    norm = Normalisation.from_contract(b.info.json_meta("inputs"))
    h, w = sparse.shape
    return crop_outputs(b.infer(to_inputs_numpy(rgb, sparse, norm, b.info.stride)), h, w)[0]


def test_imported_directory_exports_with_parity(enet: dict) -> None:
    cfg = models.read_config(enet["dir"])
    assert cfg["model"] == "enet" and cfg["params"]["fx_px"] == 200.0 and cfg["params"]["cy_px"] == 48.0
    prov = json.loads((enet["dir"] / "provenance.json").read_text())
    assert prov["layout"] == "legacy" and prov["args"]["network_model"] == "e" and prov["n_tensors"] == 384
    if enet["report"] is not None:  # exported in this session (not a cache hit): the parity report is here
        for row in enet["report"].rows:
            if row["output"] == "depth":
                assert row["max_abs"] <= 1e-3 + 1e-4 * row["max_ref"], row


def test_depth_nodes_eval_runs_the_imported_model(enet: dict, tmp_path: Path, capsys) -> None:
    from depth_nodes.data.kitti_depth import read_depth_png, write_frame
    from depth_nodes.runtime.frames import street_frame

    h, w = EXPORT_HW
    K = np.array([[200.0, 0, 160], [0, 200.0, 48], [0, 0, 1]])
    layout = tmp_path / "val_selection_cropped"
    frames = [street_frame(h, w, seed=s) for s in (1, 2)]
    for i, (img, sp) in enumerate(frames):
        gt = np.where(sp > 0, sp, 0).astype(np.float32)
        write_frame(layout, "2011_09_26_drive_0001_sync", i, img, sp, gt, K)
    out = tmp_path / "eval"
    rc = main(["eval", str(layout), "--method", "learned", "--param", f"model_dir={enet['dir']}", "-o", str(out),
               "--figures", "0", "--conditioned"])  # fmt: skip  (the model sees the stored returns as they are)
    assert rc == 0, capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_frames"] == 2
    # the predictions are the imported model's answer on ONNX Runtime (PNG: metres x 256, 0 = none, <= 120 m)
    from depth_nodes.data.kitti_depth import list_frames

    first = list_frames(layout)[0].load()
    want = _ort_depth(enet["onnx"], first["image"], first["sparse"])
    pred = read_depth_png(sorted((out / "predictions").glob("*.png"))[0])
    ok = np.isfinite(want) & (want <= 120.0)
    assert ok.sum() > 2000, ok.sum()  # random weights: most of the output is beyond 120 m
    np.testing.assert_allclose(pred[ok], want[ok], atol=1 / 256 + 1e-4)  # PNG: 1/256 m steps
    assert (pred[~ok] == 0).all()


@pytest.mark.ros
def test_node_publishes_the_imported_model_on_onnxruntime(enet: dict) -> None:
    from node_io import depth_array, start_node, stop_node

    params = {
        "completer": "learned", "backend": "onnxruntime", "model_dir": str(enet["dir"]),
        "model_resolutions": f"{EXPORT_HW[0]}x{EXPORT_HW[1]}", "keep_lidar_returns": False,
    }  # fmt: skip
    proc, client, sender = start_node(params)
    try:
        want = _ort_depth(enet["onnx"], sender.rgb, sender.sparse)
        deadline = time.monotonic() + 300.0  # ONNX Runtime opens a 0.5 GB graph; ENet takes seconds a frame here
        depth, seen = None, 0
        while depth is None and time.monotonic() < deadline:
            sender.send()
            time.sleep(1.0)  # a slow camera: the node's one-slot mailbox keeps the newest frame while ENet runs
            with client.cond:
                msgs = list(client.messages["depth/image_rect"])
            diag = client.latest_diagnostics()
            assert diag.get("learned_state") != "fallback", diag
            for msg in msgs[seen:]:
                got = depth_array(msg)
                both = np.isfinite(want) & np.isfinite(got)
                # the classical fallback served frames while the model loaded: wait for the model's answer
                if both.mean() > 0.5 and np.allclose(got[both], want[both], rtol=1e-4, atol=1e-3):
                    depth = got
            seen = len(msgs)
        assert depth is not None, f"the model's depth never came: {diag}\n{proc.output()[-2000:]}"
        assert (np.isfinite(want) == np.isfinite(depth)).mean() > 0.99  # NaN where the model gives no depth
        assert diag["learned_model"] == "enet" and diag["learned_backend"] == "onnxruntime"
        assert diag["estimator_guided"] == "learned" and "onnxruntime" in diag["learned_backend_reason"]
    finally:
        stop_node(proc, client)
