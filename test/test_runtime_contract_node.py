"""The depth node (own process, real rclpy) running a user's ONNX by its model.json (``completer: learned``,
``model_dir`` = the directory with model.onnx + model.json) on ONNX Runtime: the published depth is the model's."""

from __future__ import annotations

import json
import logging
import time
import warnings

import node_scene as scene
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0 then .[ml])")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[ml]')")
from node_io import depth_array, start_node, stop_node  # noqa: E402

# slow: an export (~10 s loaded) and a node process with DDS discovery and a model load (~15-30 s)
pytestmark = [pytest.mark.ros, pytest.mark.slow]


class Analytic(torch.nn.Module):
    """depth = 10 + 2 u + 3 v + fx / 100 (m): what the node must publish if it fed position and K as declared.
    rgb and d enter with 1e-6 weights (< 2e-4 m) so the graph keeps them as inputs."""

    def forward(self, rgb, d, position, K):
        base = 10.0 + 2.0 * position[:, :1] + 3.0 * position[:, 1:] + K[:, 0, 0].view(-1, 1, 1, 1) / 100.0
        return base + 1e-6 * (rgb.mean(1, keepdim=True) + d)


def _make(root):
    root.mkdir()
    h, w = torch.export.Dim("h", min=1, max=64), torch.export.Dim("w", min=1, max=64)
    dims = {2: 32 * h, 3: 32 * w}
    args = (torch.rand(1, 3, 96, 320), torch.rand(1, 1, 96, 320), torch.rand(1, 2, 96, 320), torch.eye(3)[None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(Analytic(), args, str(root / "model.onnx"), input_names=["rgb", "d", "position", "K"],
                          output_names=["output"], opset_version=18, dynamo=True, external_data=False,
                          dynamic_shapes={"rgb": dims, "d": dims, "position": dims, "K": None})  # fmt: skip
    (root / "model.json").write_text(json.dumps({
        "format": "depth_nodes.onnx_contract/1", "name": "analytic",
        "inputs": {"rgb": {"source": "image", "layout": "NCHW", "units": "0..255"},
                   "d": {"source": "depth", "layout": "NCHW", "units": "metres"},
                   "position": {"source": "position", "layout": "NCHW", "units": "uv_-1..1"},
                   "K": {"source": "intrinsics", "units": "pixels"}},
        "outputs": {"output": {"kind": "metric"}}, "size": {"stride": 32}}))  # fmt: skip
    return root


def test_node_runs_an_onnx_by_its_contract(tmp_path) -> None:
    model_dir = _make(tmp_path / "analytic")
    h, w = scene.HEIGHT, scene.WIDTH
    u = 2 * np.arange(w) / (w - 1) - 1
    v = 2 * np.arange(h) / (h - 1) - 1
    expected = 10 + 2 * u[None, :] + 3 * v[:, None] + scene.K[0, 0] / 100.0
    proc, client, sender = start_node({"completer": "learned", "backend": "onnxruntime", "model_dir": str(model_dir),
                                       "keep_lidar_returns": False})  # fmt: skip
    try:
        deadline = time.monotonic() + 90.0
        last = "no depth received"
        while True:  # frames at ~10 Hz like a camera (as test_runtime_node): one lone frame may wait for the next
            assert time.monotonic() < deadline, (f"never saw the contract model ({last}): "
                                                 f"{client.latest_diagnostics()}\n{proc.output()[-3000:]}")  # fmt: skip
            stamp = sender.send()
            try:
                msg = client.wait_stamp("depth/image_rect", stamp, timeout=0.5)
            except TimeoutError:
                with client.cond:
                    got = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                           for m in client.messages["depth/image_rect"]]
                last = f"sent {stamp}, depth stamps {got[-2:]} of {len(got)}"
                continue
            diag = client.latest_diagnostics()
            depth = depth_array(msg)
            err = np.abs(depth - expected)
            last = f"max |depth - expected| {np.nanmax(err):.4g} m, {int(np.isnan(err).sum())} NaN; {diag.get('mode')}"
            # (start-up frames leave the diagnostics window: wait for level OK like test_runtime_node)
            if diag.get("learned_state") == "active" and diag.get("mode") == "guided" and diag.get("level") == "0":
                if np.allclose(depth, expected, atol=1e-3):
                    break
            time.sleep(0.1)
        assert diag["learned_model"] == "analytic" and diag["learned_backend"] == "onnxruntime", diag
        assert diag["estimator"] == "learned", diag
    finally:
        stop_node(proc, client)
