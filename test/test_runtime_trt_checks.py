"""Checks that can fail (issue 22): the accuracy gate of fp16/int8 engines, the real precision label of an fp16
ONNX and of a given ``--engine``, transient vs permanent execute errors, a failed export never cached, and
GPU detection beyond torch (a Jetson with a CPU-only torch)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runtime_helpers import exported_model, small_model
from runtime_trt_fakes import make_fake_trt

from depth_nodes.runtime import export as export_mod
from depth_nodes.runtime import factory, trt_gpu
from depth_nodes.runtime.errors import EngineError, ParityError
from depth_nodes.runtime.frames import street_frame
from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy
from depth_nodes.runtime.trt_backend import GpuInfo, TensorRTBackend
from depth_nodes.runtime.trt_errors import TransientEngineError, classify

ORIN = GpuInfo("Orin", "8.7")
RES = [(32, 48)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    return exported_model(tmp_path_factory)


def feed(h: int = 32, w: int = 48, seed: int = 0) -> dict:
    img, sp = street_frame(h, w, seed=seed)
    return to_inputs_numpy(img, sp, Normalisation(), 4)


def make(onnx, cache, trt, precision="fp32", **kw) -> TensorRTBackend:
    b = TensorRTBackend(onnx, precision, "cpu", cache, RES, trt_module=trt, gpu=ORIN, on_line=lambda s: None, **kw)
    b.ensure_loaded()
    return b


def test_accuracy_gate_refuses_a_reduced_precision_engine_off_fp32(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    trt.precision_error = 0.04  # a depth scale jump of 4 %: finite, so the NaN guard cannot see it
    frames = [feed(seed=s) for s in range(2)]
    b = make(exported["onnx"], tmp_path, trt, "fp16", warmup_inputs=frames, check_source="frames of /robot")
    assert b.precision == "fp32" and trt.calls["flags"][-1] == []  # rebuilt fp32: the safe precision
    note = next(n for n in b.notes if "fp16 engine refused" in n)
    assert "mean |depth error| 4 % (tolerance 1 %)" in note and "2 frames of /robot" in note
    trt.precision_error = 0.002  # within the fp16 tolerance: kept, and the measured error is reported
    b = make(exported["onnx"], tmp_path / "ok", trt, "fp16", warmup_inputs=frames)
    assert b.precision == "fp16" and b.accuracy.ok and 0.0019 < b.accuracy.mean_rel < 0.0021
    assert "fp16 vs ONNX Runtime fp32" in b.describe()["accuracy"]
    trt.precision_error = 0.10  # int8: 3 % / 15 % tolerance
    b = make(exported["onnx"], tmp_path / "i8", trt, "int8", calib_inputs=frames, warmup_inputs=frames)
    assert b.precision == "fp32" and any("int8 engine refused" in n for n in b.notes)


def test_an_fp16_onnx_and_a_given_engine_carry_their_real_precision(exported, tmp_path) -> None:
    import onnx
    from onnx import numpy_helper

    typed = tmp_path / "fp16.onnx"
    m = onnx.load(str(exported["onnx"]))
    m.graph.initializer.append(numpy_helper.from_array(np.zeros(1, np.float16), "fp16_marker"))
    onnx.save(m, str(typed))
    trt = make_fake_trt("10.3.0")
    b = make(typed, tmp_path, trt, "fp32")  # asked fp32, but the graph is fp16
    assert b.precision == "fp16" and any("already fp16" in n for n in b.notes)
    assert "-fp16-" in b.engine_file.name
    given = make(exported["onnx"], tmp_path / "x", trt, "fp32", engine_path=b.engine_file)  # check-engine --engine
    assert given.precision == "fp16" and any("from " + b.engine_file.with_suffix(".json").name in n for n in given.notes)
    assert json.loads(b.engine_file.with_suffix(".json").read_text())["precision"] == "fp16"


def test_execute_errors_are_transient_or_permanent(exported, tmp_path) -> None:
    trt = make_fake_trt("11.1.0")
    b = make(exported["onnx"], tmp_path, trt)
    trt.fail_execute = ["Cuda Runtime (out of memory)"]
    with pytest.raises(TransientEngineError, match="out of memory") as err:
        b.infer(feed())
    assert classify(err.value) == "transient"
    assert np.isfinite(b.infer(feed())["depth"]).all()  # the next frame runs: the engine is fine
    trt.fail_execute = ["Cuda Runtime (an illegal memory access was encountered)"]
    with pytest.raises(EngineError, match="illegal memory access") as err:
        b.infer(feed())
    assert classify(err.value) == "permanent"
    torch = pytest.importorskip("torch")
    assert classify(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")) == "transient"
    assert classify(RuntimeError("CUDA error: unspecified launch failure")) == "transient"
    assert classify(RuntimeError("CUDA error: an illegal memory access was encountered")) == "permanent"
    assert classify(ValueError("shapes do not match")) == "permanent"


def test_a_failed_parity_check_leaves_nothing_to_be_found(tmp_path, monkeypatch) -> None:
    real_parity = export_mod.parity

    def bad_parity(*a, **k):
        report = real_parity(*a, **k)
        report.rows[0]["max_abs"] = 0.5  # as a broken exporter / op would
        return report

    monkeypatch.setattr(export_mod, "parity", bad_parity)
    # the node's path: a model directory without model.onnx is exported into the cache dir; a failed export must
    # leave nothing there (before: the file was renamed into place first and the next start used it silently)
    from depth_nodes import models

    models.save(small_model(), tmp_path / "model")
    with pytest.raises(ParityError, match="nothing written to"):
        factory.resolve_onnx(tmp_path / "model", tmp_path / "cache", 32, 48)
    assert not list((tmp_path / "cache").iterdir())  # no final file, no temporary left over


def test_a_jetson_with_a_cpu_torch_is_detected_and_reported(tmp_path, monkeypatch, exported) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3\n")
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Orin NX Engineering Reference Developer Kit\x00")
    monkeypatch.setattr(trt_gpu, "TEGRA_RELEASE", release)
    monkeypatch.setattr(trt_gpu, "DEVICE_TREE_MODEL", model)
    monkeypatch.setattr(factory, "cuda_gpu", lambda: "")
    name, how = trt_gpu.detect_gpu(torch_ok=False)
    assert name == "NVIDIA Jetson Orin NX Engineering Reference Developer Kit" and str(release) in how
    kind, why = factory.choose_backend("auto")
    assert kind == "onnxruntime" and "no CUDA GPU visible" in why
    assert "Jetson Orin NX" in why and "CPU-only torch" in why and "JetPack" in why
    b = factory.create_backend(exported["onnx"], "auto", "fp16")
    assert b.kind == "onnxruntime" and "CPU-only torch" in b.gpu_unused
    from depth_nodes.pipeline.learned_estimator import GuardedLearnedEstimator
    from depth_nodes.runtime.predictor import LearnedOptions

    g = GuardedLearnedEstimator(LearnedOptions(str(exported["onnx"]), "auto", resolutions=RES), background=False)
    values, warnings = g.diagnostics()
    assert values["learned_state"] == "active" and "Jetson Orin NX" in values["learned_gpu_unused"]
    assert any("CPU-only torch" in w for w in warnings)  # the node reports WARN, not a silent CPU run
    g.close()


def test_check_engine_fails_a_reduced_precision_engine_off_fp32(exported, tmp_path, monkeypatch, capsys) -> None:
    """check-engine used to fail only on fp32 differences: now fp16 over its tolerance fails it (exit 1)."""
    from depth_nodes.cli import main as cli_main
    from depth_nodes.runtime import engine_tools, trt_backend

    trt = make_fake_trt("10.3.0")

    class OnFake(trt_backend.TensorRTBackend):  # the CLI's backend, on the fake module and the CPU
        def __init__(self, onnx, precision, device, *a, **k):
            super().__init__(onnx, precision, "cpu", *a, trt_module=trt, gpu=ORIN, **k)

    monkeypatch.setattr(trt_backend, "TensorRTBackend", OnFake)
    monkeypatch.setattr(factory, "cuda_gpu", lambda: "Orin")
    monkeypatch.setattr(factory, "_has", lambda m: True)
    monkeypatch.setattr(engine_tools, "_fps", lambda b, f, n: 123.0)  # timing needs CUDA
    args = ["check-engine", str(exported["onnx"]), "-r", "32x48", "--precision", "fp32", "--precision", "fp16",
            "--engine-cache-dir", str(tmp_path), "--iterations", "1"]  # fmt: skip
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert out.count(": PASS") == 2 and "fp16 vs ONNX Runtime fp32 on 4 street frames (procedural)" in out
    trt.precision_error = 0.04
    assert cli_main([*args, "--force-engine-update"]) == 1
    out = capsys.readouterr().out
    assert "check-engine FAILED: fp16: engine refused" in out and "mean |depth error| 4 %" in out
