"""The guarded learned estimator on the TensorRT path (fakes derived from the real bindings), end to end.

- a KITTI raw camera (375x1242, padded to 384x1248 by a stride-32 model) runs through TensorRT with the default
  ``model_resolutions`` and with the docs' ``376x1248``, and its depth becomes the node's 32FC1 image;
- a transient CUDA error serves one frame classically, then the model recovers after the backoff;
- too many transient errors, or a permanent one, fall back for good, and the diagnostics say which;
- an input size outside every profile: ONNX Runtime serves while the engine is rebuilt, then TensorRT again.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from runtime_helpers import exported_model, small_model
from runtime_trt_fakes import make_fake_trt

from depth_nodes.pipeline.learned_estimator import GuardedLearnedEstimator
from depth_nodes.runtime.export import export
from depth_nodes.runtime.frames import street_frame
from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend
from depth_nodes.runtime.predictor import LearnedOptions, parse_resolutions
from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy
from depth_nodes.runtime.trt_gpu import GpuInfo

ORIN = GpuInfo("Orin (NVIDIA Jetson AGX Orin Developer Kit)", "8.7")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    return exported_model(tmp_path_factory)


@pytest.fixture(scope="module")
def stride32(tmp_path_factory):
    """A 5-level tiny U-Net (stride 32, like the shipped models) exported with dynamic H/W."""
    out = tmp_path_factory.mktemp("stride32") / "model.onnx"
    export(small_model(levels=5), out, 64, 96)
    return out


def frame(h: int, w: int, seed: int = 0) -> SimpleNamespace:
    rgb, sp = street_frame(h, w, seed=seed)
    return SimpleNamespace(rgb=rgb, sparse=SimpleNamespace(depth=sp))


def guard(onnx, cache, trt, resolutions, clock=None, **opts) -> GuardedLearnedEstimator:
    o = LearnedOptions(str(onnx), "tensorrt", "fp32", "cpu", str(cache), resolutions=resolutions,
                       backend_options={"trt_module": trt, "gpu": ORIN}, **opts)  # fmt: skip
    kw = {"clock": clock} if clock else {}
    return GuardedLearnedEstimator(o, background=False, log_warning=lambda s: None, **kw)


@pytest.mark.parametrize("resolutions", ["352x1216", "376x1248"])
def test_a_kitti_raw_camera_runs_through_tensorrt_and_publishes_depth(stride32, tmp_path, resolutions) -> None:
    trt = make_fake_trt("10.13.3")
    g = guard(stride32, tmp_path, trt, parse_resolutions(resolutions))  # 376x1248: padded, not refused
    values, warnings = g.diagnostics()
    assert values["learned_state"] == "active" and not warnings, values
    f = frame(375, 1242)
    out = g.estimate(f)
    assert out.depth.shape == (375, 1242) and np.isfinite(out.depth).mean() > 0.99
    ctx = trt.last_context
    assert ctx._shapes["image"] == (1, 3, 384, 1248)  # the padded camera, run by the TensorRT engine itself
    expect = OnnxRuntimeBackend(stride32).infer(to_inputs_numpy(f.rgb, f.sparse.depth, Normalisation(), 32))
    assert np.nanmax(np.abs(out.depth - expect["depth"][0, 0, :375, :1242])) < 1e-4
    values, _ = g.diagnostics()
    want = "160x608..448x1536 (opt 352x1216)" if resolutions == "352x1216" else "192x608..480x1568 (opt 384x1248)"
    assert values["learned_serving"] == "tensorrt" and values["learned_profiles"] == want
    assert values["learned_engine_sizing"] == f"input 375x1242 runs in profile {want}"
    assert trt.calls["builds"] == 1  # no rebuild: the profile holds the camera
    sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="ROS 2 messages not installed (pip install '.[ros]')")
    from depth_nodes.ros.builders.image import numpy_to_image

    msg = numpy_to_image(out.depth, "32FC1")  # what the node publishes on depth/image
    assert isinstance(msg, sensor_msgs.Image) and (msg.height, msg.width, msg.step) == (375, 1242, 1242 * 4)
    g.close()


def test_a_transient_error_recovers_after_the_backoff(exported, tmp_path) -> None:
    now = [100.0]
    trt = make_fake_trt("11.1.0")
    g = guard(exported["onnx"], tmp_path, trt, [(32, 48)], clock=lambda: now[0], retry_backoff_s=0.5, max_retries=2)
    f = frame(32, 48)
    learned = g.estimate(f).depth
    trt.fail_execute = ["Cuda Runtime (out of memory)"]
    classical = g.estimate(f).depth  # this frame: the classical completer
    assert not np.allclose(classical, learned, equal_nan=True)
    values, warnings = g.diagnostics()
    assert values["learned_state"] == "retrying" and values["learned_error_kind"] == "transient"
    assert values["learned_serving"] == "guided" and "retried in 0.5 s" in warnings[0] and "out of memory" in warnings[0]
    executes = trt.calls["executes"]
    g.estimate(f)  # within the backoff: not retried yet
    assert trt.calls["executes"] == executes
    now[0] += 0.6
    assert np.allclose(g.estimate(f).depth, learned, equal_nan=True)  # recovered: the model's depth again
    values, warnings = g.diagnostics()
    assert values["learned_state"] == "active" and values["learned_recovered_errors"] == "1" and not warnings
    # max_retries transient errors in a row: classical for good, and the diagnostics say so
    trt.fail_execute = ["Cuda Runtime (out of memory)"] * 5
    for _ in range(3):
        g.estimate(f)
        now[0] += 10.0
    values, warnings = g.diagnostics()
    assert values["learned_state"] == "fallback" and values["learned_error_kind"] == "permanent"
    assert "3 times in a row" in warnings[0]


def test_a_permanent_error_falls_back_for_good(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    g = guard(exported["onnx"], tmp_path, trt, [(32, 48)])
    trt.fail_execute = ["Cuda Runtime (an illegal memory access was encountered)"]
    g.estimate(frame(32, 48))
    values, warnings = g.diagnostics()
    assert values["learned_state"] == "fallback" and values["learned_error_kind"] == "permanent"
    assert "illegal memory access" in warnings[0] and values["learned_serving"] == "guided"


def test_a_new_size_rebuilds_the_engine_while_onnxruntime_serves(exported, tmp_path) -> None:
    trt = make_fake_trt("10.13.3")
    trt.build_delay_s = 0.5
    g = guard(exported["onnx"], tmp_path, trt, [(32, 48)])  # profile 16x24..40x60
    f = frame(64, 96)
    out = g.estimate(f)  # outside every profile: ONNX Runtime answers this frame
    expect = OnnxRuntimeBackend(exported["onnx"]).infer(to_inputs_numpy(f.rgb, f.sparse.depth, Normalisation(), 4))
    assert np.nanmax(np.abs(out.depth - expect["depth"][0, 0])) < 1e-5
    values, warnings = g.diagnostics()
    assert values["learned_state"] == "rebuilding" and values["learned_serving"] == "onnxruntime (cpu)" and not warnings
    assert "engine rebuilding for 64x96" in values["learned_engine_sizing"]
    g.wait_rebuilt(30.0)
    values, _ = g.diagnostics()
    assert values["learned_state"] == "active" and values["learned_serving"] == "tensorrt"
    assert "engine rebuilt for 64x96" in values["learned_engine_sizing"] and "(opt 64x96)" in values["learned_profiles"]
    executes = trt.calls["executes"]
    again = g.estimate(f)
    assert trt.calls["executes"] == executes + 1 and np.nanmax(np.abs(again.depth - out.depth)) < 1e-5
    assert trt.calls["builds"] == 2
    g.close()


def test_a_transient_error_while_loading_is_retried(exported, tmp_path, monkeypatch) -> None:
    from depth_nodes.runtime import trt_backend

    real_open, calls = trt_backend.TensorRTBackend._open_engine, []

    def flaky_open(self, precision, force):
        calls.append(precision)
        if len(calls) == 1:  # the first build hits a CUDA OOM (another process's peak), the second works
            raise trt_backend.TransientEngineError("TensorRT execute_async_v3 failed: Cuda Runtime (out of memory)")
        return real_open(self, precision, force)

    monkeypatch.setattr(trt_backend.TensorRTBackend, "_open_engine", flaky_open)
    g = guard(exported["onnx"], tmp_path, make_fake_trt("10.3.0"), [(32, 48)], retry_backoff_s=0.01)
    values, warnings = g.diagnostics()
    assert len(calls) == 2 and values["learned_state"] == "active" and values["learned_error_kind"] == ""
    assert not warnings
