"""TensorRT logic without a GPU, against fakes derived from the real 10.x and 11.x bindings (runtime_trt_fakes.py).

Engine cache keys and invalidation on each key, min/opt/max profiles and their selection, binding by name, the
precision path of each version (10.3 weak, 10.12+ and 11.x strong), the FP16 guard, the accuracy gate, the
label of fp16 ONNX and given engines, transient execute errors, atomic cache writes under concurrent builds,
corrupt engines.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import exported_model, torch
from runtime_trt_fakes import MAGIC, make_fake_trt

from depth_nodes.runtime import trt_precision
from depth_nodes.runtime.errors import BackendUnavailableError, EngineError
from depth_nodes.runtime.frames import street_frame
from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend
from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy
from depth_nodes.runtime.trt_backend import GpuInfo, TensorRTBackend
from depth_nodes.runtime.trt_errors import ProfileMismatchError, classify

ORIN = GpuInfo("Orin", "8.7")
RES = [(32, 48), (16, 24)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    return exported_model(tmp_path_factory)


def feed(h: int, w: int, seed: int = 0) -> dict:
    img, sp = street_frame(h, w, seed=seed)
    return to_inputs_numpy(img, sp, Normalisation(), 4)


def make(onnx, cache, trt, precision="fp32", gpu=ORIN, res=RES, **kw) -> TensorRTBackend:
    b = TensorRTBackend(onnx, precision, "cpu", cache, res, trt_module=trt, gpu=gpu, on_line=lambda s: None, **kw)
    b.ensure_loaded()
    return b


@pytest.mark.parametrize("version", ["10.3.0", "10.13.3", "11.1.0"])
def test_binding_by_name_and_profile_selection(exported, tmp_path, version) -> None:
    trt = make_fake_trt(version)
    b = make(exported["onnx"], tmp_path, trt)
    assert b.input_names == ("image", "sparse_inv_depth") and b.output_names == ("depth", "confidence")
    # min/opt/max around each resolution (x0.5 .. x1.25, stride 4), opt = the resolution itself
    assert trt.calls["profiles"][-1][0]["image"] == ((1, 3, 16, 24), (1, 3, 32, 48), (1, 3, 40, 60))
    assert b.describe()["profiles"] == "16x24..40x60 (opt 32x48), 8x12..20x32 (opt 16x24)"
    ref = OnnxRuntimeBackend(exported["onnx"])
    for (h, w), profile in ((32, 48), 0), ((16, 24), 1), ((24, 36), 0), ((12, 16), 1), ((32, 48), 0):
        f = feed(h, w)
        out = b.infer(f)
        assert trt.last_context._profile == profile  # exact opt preferred, else the first profile that covers
        expect = ref.infer(f)
        for n in b.output_names:  # outputs read back from the addresses bound by name, real shapes
            assert out[n].shape == (1, 1, h, w) and np.abs(out[n] - expect[n]).max() < 1e-6
    t = {n: torch.from_numpy(v) for n, v in feed(16, 24).items()}
    assert isinstance(b.infer(t)["depth"], torch.Tensor)  # torch in -> torch out
    with pytest.raises(ProfileMismatchError, match="profile mismatch.*input is 64x96") as err:
        b.infer(feed(64, 96))
    assert err.value.size == (64, 96) and classify(err.value) == "new_size"
    assert trt.calls["workspace"] == [1 << 30]
    assert set(trt.calls["streams"]) == {0}  # CPU here: the null stream handle (a torch CUDA stream on a GPU)


def test_a_camera_size_is_padded_to_the_stride_not_refused(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    b = make(exported["onnx"], tmp_path, trt, res=[(30, 45)])  # stride 4: 32x48, like KITTI 376x1248 -> 384x1248
    assert b.describe()["profiles"] == "16x24..40x60 (opt 32x48)"
    assert any("padded to the model stride 4: 32x48" in n for n in b.notes)
    assert b.infer(feed(32, 48))["depth"].shape == (1, 1, 32, 48)


def test_cache_hit_and_rebuild_on_each_key(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    make(exported["onnx"], tmp_path, trt)
    assert trt.calls["builds"] == 1
    b = make(exported["onnx"], tmp_path, trt)
    assert trt.calls["builds"] == 1 and b.cache_event.startswith("cache hit")
    other_onnx = tmp_path / "other.onnx"  # same graph, one metadata byte different -> another sha256
    import onnx

    m = onnx.load(str(exported["onnx"]))
    m.metadata_props.add(key="note", value="retrained")
    onnx.save(m, str(other_onnx))
    changes = [
        dict(onnx=other_onnx),
        dict(gpu=GpuInfo("NVIDIA GeForce RTX 4090", "8.7")),
        dict(gpu=GpuInfo("Orin", "8.9")),
        dict(precision="fp16"),
        dict(res=[(32, 48)]),
        dict(workspace_mb=512),
    ]
    for i, change in enumerate(changes, start=2):
        kw = {"onnx": exported["onnx"], **change}
        make(kw.pop("onnx"), tmp_path, trt, **kw)
        assert trt.calls["builds"] == i, change
        make(exported["onnx"], tmp_path, trt, **{k: v for k, v in change.items() if k != "onnx"})
        assert trt.calls["builds"] == i, f"second lookup of {change} must hit the cache"
    trt11 = make_fake_trt("11.1.0")  # TensorRT version drift: same dir, other version -> rebuilt, never reused
    make(exported["onnx"], tmp_path, trt11)
    assert trt11.calls["builds"] == 1
    b = make(exported["onnx"], tmp_path, trt, force_engine_update=True)
    assert trt.calls["builds"] == len(changes) + 2 and "force_engine_update" in b.cache_event
    assert list(tmp_path.glob("timing-*.cache"))  # persistent timing cache written


def test_precision_path_tensorrt_10_3_weakly_typed(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    b = make(exported["onnx"], tmp_path, trt, "fp16")
    assert trt.calls["flags"][-1] == ["BuilderFlag.FP16"] and trt.calls["network_flags"][-1] == 0
    assert "BuilderFlag.FP16" in b.build_path
    calib = [feed(32, 48, seed=s) for s in range(3)]
    b = make(exported["onnx"], tmp_path, trt, "int8", calib_inputs=calib)
    assert trt.calls["flags"][-1] == ["BuilderFlag.FP16", "BuilderFlag.INT8"]
    assert trt.calls["calib_batches"] == 3 and "IInt8EntropyCalibrator2" in b.build_path
    builds = trt.calls["builds"]
    b = make(exported["onnx"], tmp_path, trt, "int8")  # no frames (the node): finds the calibrated engine
    assert trt.calls["builds"] == builds and "calibrated by build-engine" in b.cache_event
    with pytest.raises(EngineError, match="no cached int8 engine.*build-engine"):
        make(exported["onnx"], tmp_path / "c2", trt, "int8")
    # An ONNX that carries its types (fp16 tensors) is built strongly typed, without precision flags.
    typed = tmp_path / "typed.onnx"
    _fake_fp16_onnx(exported["onnx"], typed)
    make(typed, tmp_path, trt, "fp16")
    assert trt.calls["network_flags"][-1] == 1 << 1 and trt.calls["flags"][-1] == []
    assert trt.calls["parsed_paths"][-1] == str(typed)  # parse(data, path): external weights can be found


def test_precision_path_tensorrt_10_12_plus_is_strongly_typed(exported, tmp_path, monkeypatch) -> None:
    """10.12+ deprecates BuilderFlag.FP16/INT8 (the fake of 10.13 has no BuilderFlag at all, as USED allows):
    the ONNX is converted and built STRONGLY_TYPED, with no precision flags and no calibrator."""
    trt = make_fake_trt("10.13.3")
    assert not hasattr(trt, "BuilderFlag") and not hasattr(trt, "IInt8EntropyCalibrator2")
    converted = []
    monkeypatch.setattr(trt_precision, "convert_fp16", lambda s, o, c=None: converted.append(c) or _fake_fp16_onnx(s, o))
    monkeypatch.setattr(trt_precision, "converter_id", lambda p: "fake autocast 1.0")
    calib = [feed(32, 48, seed=s) for s in range(2)]
    b = make(exported["onnx"], tmp_path, trt, "fp16", calib_inputs=calib)
    assert trt.calls["network_flags"][-1] == 1 << 1 and trt.calls["flags"][-1] == []
    assert "STRONGLY_TYPED" in b.build_path and "10.12+" in b.build_path and b.precision == "fp16"
    assert converted[0]["image"].shape == (2, 3, 32, 48)  # AutoCast gets the calibration frames
    key = b.engine_file.with_suffix(".json").read_text()
    assert "fake autocast 1.0" in key and '"workspace_bytes": 1073741824' in key
    monkeypatch.setattr(trt_precision, "converter_id", lambda p: "onnxconverter-common 1.14 (float16)")
    make(exported["onnx"], tmp_path, trt, "fp16", calib_inputs=calib)  # another converter: another graph
    assert trt.calls["builds"] == 2


def _fake_fp16_onnx(src: Path, out: Path) -> str:
    """Stand-in for ModelOpt AutoCast: the same graph plus an fp16 initializer (typed, as a converted ONNX is)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    m.graph.initializer.append(numpy_helper.from_array(np.zeros(1, np.float16), "autocast_marker"))
    onnx.save(m, str(out))
    return "fake autocast"


def test_precision_path_tensorrt_11(exported, tmp_path, monkeypatch) -> None:
    trt = make_fake_trt("11.1.0")
    assert not hasattr(trt, "BuilderFlag") and not hasattr(trt, "IInt8EntropyCalibrator2")
    try:
        import modelopt  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailableError, match="modelopt"):
            make(exported["onnx"], tmp_path, trt, "fp16")
    converted = []
    monkeypatch.setattr(trt_precision, "convert_fp16", lambda s, o, c=None: converted.append(o) or _fake_fp16_onnx(s, o))
    b = make(exported["onnx"], tmp_path, trt, "fp16")
    assert converted and converted[0].parent == tmp_path  # converted ONNX lives in the cache dir
    assert trt.calls["flags"][-1] == [] and trt.calls["network_flags"][-1] == 0  # no flags at all in 11.x
    assert "strongly typed" in b.build_path and any("fake autocast" in n for n in b.notes)
    with pytest.raises(EngineError, match="no cached int8 engine"):
        make(exported["onnx"], tmp_path, trt, "int8")
    quantized = []

    def fake_quantize(src, out, calib):
        quantized.append({n: a.shape for n, a in calib.items()})
        return _fake_fp16_onnx(src, out)

    monkeypatch.setattr(trt_precision, "quantize_int8", fake_quantize)
    make(exported["onnx"], tmp_path, trt, "int8", calib_inputs=[feed(32, 48, seed=s) for s in range(2)])
    assert quantized == [{"image": (2, 3, 32, 48), "sparse_inv_depth": (2, 1, 32, 48)}]
    with pytest.raises(BackendUnavailableError, match="too old"):
        make(exported["onnx"], tmp_path, make_fake_trt("8.6.1"))


def test_fp16_guard_rebuilds_in_fp32(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    trt.fp16_overflow = True
    b = make(exported["onnx"], tmp_path, trt, "fp16")  # default warm-up: street frames at the first profile
    assert b.precision == "fp32" and trt.calls["builds"] == 2 and trt.calls["flags"][-1] == []
    assert any("non-finite outputs on warm-up frame 0" in n for n in b.notes)
    assert np.isfinite(b.infer(feed(32, 48))["depth"]).all()
    trt.fp16_overflow = False
    b = make(exported["onnx"], tmp_path / "ok", trt, "fp16", warmup_inputs=[feed(32, 48)])
    assert b.precision == "fp16" and not b.notes


def test_concurrent_builders_build_once_and_write_atomically(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    trt.build_delay_s = 0.4
    seen_partial, results, errors = [], [], []

    def watch() -> None:  # a reader polling while the builders work never sees a partial engine
        while not results and not errors:
            for p in tmp_path.glob("*.engine"):
                data = p.read_bytes()
                if not data.startswith(MAGIC):
                    seen_partial.append(p)

    def build() -> None:
        try:
            results.append(make(exported["onnx"], tmp_path, trt).engine_file)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(4)]
    w = threading.Thread(target=watch)
    w.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    w.join(5)
    assert not errors and len(set(results)) == 1 and len(results) == 4
    assert trt.calls["builds"] == 1 and not seen_partial
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_corrupt_engines(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    b = make(exported["onnx"], tmp_path, trt)
    eng = b.engine_file
    eng.write_bytes(eng.read_bytes()[:40])  # truncated in the cache: rebuilt automatically
    b = make(exported["onnx"], tmp_path, trt)
    assert trt.calls["builds"] == 2 and b.engine is not None
    given = tmp_path / "given.engine"
    shutil.copy(b.engine_file, given)
    given.write_bytes(given.read_bytes()[:25])
    with pytest.raises(EngineError, match="cannot deserialize .*given.engine: corrupt, truncated"):
        make(exported["onnx"], tmp_path, trt, engine_path=given)
    with pytest.raises(EngineError, match="cannot deserialize"):  # an engine of another TensorRT version
        make(exported["onnx"], tmp_path, make_fake_trt("10.7.0"), engine_path=b.engine_file)
    with pytest.raises(EngineError, match="does not exist"):
        make(exported["onnx"], tmp_path, trt, engine_path=tmp_path / "none.engine")


def test_gpu_tensorrt_backend_on_a_real_gpu(exported, tmp_path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine: the real TensorRT path runs only where one is")
    pytest.importorskip("tensorrt", reason="tensorrt not installed (JetPack's, or pip install '.[trt]')")
    b = TensorRTBackend(exported["onnx"], "fp32", "cuda:0", tmp_path, RES)
    out = b.infer({n: torch.from_numpy(v).cuda() for n, v in feed(32, 48).items()})
    ref = OnnxRuntimeBackend(exported["onnx"]).infer(feed(32, 48))
    assert np.abs(out["depth"].cpu().numpy() - ref["depth"]).max() < 1e-3


def test_engine_commands_say_clearly_when_there_is_no_gpu(exported, capsys, monkeypatch) -> None:
    from depth_nodes.cli import main as cli_main
    from depth_nodes.runtime import factory

    monkeypatch.setattr(factory, "cuda_gpu", lambda: "")
    assert cli_main(["check-engine", str(exported["onnx"])]) == 2
    assert "cannot check here: no CUDA GPU is visible" in capsys.readouterr().out
    assert cli_main(["build-engine", str(exported["onnx"]), "--precision", "fp16"]) == 2
    assert "cannot build here: no CUDA GPU" in capsys.readouterr().out
    monkeypatch.setattr(factory, "cuda_gpu", lambda: "Orin")
    monkeypatch.setattr(factory, "_has", lambda m: m != "tensorrt")
    assert cli_main(["check-engine", str(exported["onnx"])]) == 2
    assert "tensorrt is not importable" in capsys.readouterr().out
