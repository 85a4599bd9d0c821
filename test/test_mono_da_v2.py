"""Depth Anything V2 as the node runs it: pre-processing equal to transformers' own processor, the configured
device end to end, ONNX export with parity run through the runtime's ONNX Runtime backend. Tiny random configs
saved with save_pretrained (plus the processor's preprocessor_config.json) and loaded through our loader."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install transformers)")

from depth_nodes.mono import da_preprocess as dp  # noqa: E402
from depth_nodes.mono.hf import MonoModelError, load_hf_model  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _processor(size_px=518):
    """transformers' processor as the released DA-V2 directories configure it (their preprocessor_config.json)."""
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    return DPTImageProcessorPil(size={"height": size_px, "width": size_px}, keep_aspect_ratio=True,
                                ensure_multiple_of=14, do_pad=False, resample=3, image_mean=MEAN,
                                image_std=STD)  # fmt: skip


def _save(path, metric=True, prompt=False, size_px=518, std=0.3):
    T = transformers
    bb = T.Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                        image_size=56, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)  # fmt: skip
    kw = dict(backbone_config=bb, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
              fusion_hidden_size=16, head_hidden_size=8)  # fmt: skip
    if metric:
        kw.update(depth_estimation_type="metric", max_depth=80)
    if prompt:
        model = T.PromptDepthAnythingForDepthEstimation(T.PromptDepthAnythingConfig(**kw))
    else:
        model = T.DepthAnythingForDepthEstimation(T.DepthAnythingConfig(**kw))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    model.eval().save_pretrained(path)
    _processor(size_px).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def da_dir(tmp_path_factory):
    torch.set_num_threads(1)
    # weights N(0, 0.1): at 0.3 the tiny net saturates and torch fp32 itself differs from fp64 by 6e-4 of
    # max|depth| (measured), which would make any parity tolerance below that meaningless
    return _save(tmp_path_factory.mktemp("da") / "da_metric", size_px=70, std=0.1)


def _street(h, w, seed=0):
    from depth_nodes.runtime.frames import street_frame

    return street_frame(h, w, seed=seed)[0]


@pytest.mark.parametrize(
    "hw, size_px",
    [((352, 1216), 518), ((1216, 352), 518), ((400, 600), 518), ((60, 200), 70), ((37, 51), 518), ((70, 238), 70)],
    ids=["kitti", "portrait", "long-side-decides", "upscale", "tiny-upscale", "exact"],
)
def test_preprocessing_equals_transformers_processor(tmp_path, hw, size_px):
    """Our torch pre-processing vs the processor that transformers loads from the directory's
    preprocessor_config.json: same size (the 'scale closest to 1' rule, multiples of 14, portrait cameras),
    same values to PIL's fixed-point rounding (<= 2 grey levels, on < 1 % of the values)."""
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    _processor(size_px).save_pretrained(tmp_path)
    proc = DPTImageProcessorPil.from_pretrained(tmp_path)
    rng = np.random.default_rng(hw[0])
    img = _street(*hw) if min(hw) > 40 else rng.integers(0, 256, (*hw, 3), np.uint8)
    ref = proc(images=img, return_tensors="np")["pixel_values"]
    spec = dp.ProcessorSpec.from_dir(tmp_path)
    ours = dp.preprocess_torch(img, spec, "cpu").numpy()
    assert ours.shape == ref.shape == (1, 3, *dp.resize_size(*hw, spec))
    assert ours.shape[2] % 14 == 0 and ours.shape[3] % 14 == 0
    levels = np.abs(ours - ref) * np.asarray(STD, np.float32).reshape(1, 3, 1, 1) * 255.0
    assert levels.max() <= 2.01 and (levels > 0.5).mean() < 0.01, (levels.max(), (levels > 0.5).mean())


def test_loader_preprocesses_like_the_directorys_processor(da_dir):
    """Through our loader (load_hf_model reads the directory's preprocessor_config.json, here size 70) vs the
    processor transformers builds from the same directory (AutoImageProcessor picks this PIL one without
    torchvision)."""
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    img = _street(120, 400, seed=5)
    ref = DPTImageProcessorPil.from_pretrained(da_dir)(images=img, return_tensors="np")["pixel_values"]
    ours = load_hf_model(da_dir).preprocess(img).numpy()
    assert ours.shape == ref.shape == (1, 3, 70, 238)
    levels = np.abs(ours - ref) * np.asarray(STD, np.float32).reshape(1, 3, 1, 1) * 255.0
    assert levels.max() <= 2.01 and (levels > 0.5).mean() < 0.01


def test_resize_rule_examples():
    spec = dp.ProcessorSpec()
    assert dp.resize_size(352, 1216, spec) == (518, 1792)  # KITTI: the height's scale is closer to 1
    assert dp.resize_size(1216, 352, spec) == (1792, 518)  # portrait: the width
    assert dp.resize_size(400, 600, spec) == (350, 518)  # here the long side decides (0.86 closer to 1 than 1.3)
    assert dp.resize_size(518, 518, spec) == (518, 518)


def test_processor_config_errors_name_the_field(tmp_path):
    for bad, field in (({"resample": 2}, "resample"), ({"do_pad": True}, "do_pad"),
                       ({"image_mean": [0.5, 0.5]}, "image_mean"), ({"size": {"shortest_edge": 518}}, "size")):  # fmt: skip
        (tmp_path / dp.PROCESSOR_FILE).write_text(json.dumps(bad))
        with pytest.raises(dp.ProcessorConfigError, match=field):
            dp.ProcessorSpec.from_dir(tmp_path)
    assert dp.ProcessorSpec.from_dir(tmp_path / "none") == dp.ProcessorSpec()  # absent: the released defaults
    assert dp.ProcessorSpec.from_dir(tmp_path / "none", size_px=70).size_hw == (70, 70)


def _device_spy(module):
    """Devices of every tensor handed to ``module``'s forward (args and kwargs)."""
    seen = []

    def hook(_m, args, kwargs):
        seen.extend(str(v.device) for v in (*args, *kwargs.values()) if torch.is_tensor(v))

    module.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


@pytest.mark.parametrize("prompt", [False, True], ids=["da_v2", "prompt_da"])
def test_configured_device_is_used_end_to_end(tmp_path, prompt):
    """device='meta' (a device with no data: any tensor left on the CPU would show in the spy): the model's
    parameters, the uploaded image, every forward input (the PromptDA prompt too) and the output live there."""
    d = _save(tmp_path / "m", prompt=prompt, size_px=70)
    m = load_hf_model(d, device="meta")
    assert m.device == "meta" and {p.device.type for p in m.model.parameters()} == {"meta"}
    seen = _device_spy(m.model)
    sparse = np.zeros((60, 200), np.float32)
    sparse[::4, ::5] = np.linspace(5, 40, sparse[::4, ::5].size).reshape(sparse[::4, ::5].shape)
    out, used = m.predict_tensor(_street(60, 200), sparse)
    assert out.device.type == "meta" and tuple(out.shape) == (60, 200)
    assert used == prompt and len(seen) == (2 if prompt else 1) and set(seen) == {"meta"}, seen


def test_device_auto_is_cpu_without_cuda(da_dir):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: auto picks it (test_cuda_matches_cpu covers that)")
    m = load_hf_model(da_dir, device="auto", backend="auto")
    assert m.device == "cpu" and m.backend == "torch"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_matches_cpu(da_dir):
    cpu, gpu = load_hf_model(da_dir, device="cpu"), load_hf_model(da_dir, device="cuda")
    assert gpu.device == "cuda:0" and next(gpu.model.parameters()).is_cuda
    img = _street(120, 400)
    a, b = cpu.predict(img)[0], gpu.predict(img)[0]
    assert np.abs(a - b).max() <= 1e-3 * np.abs(a).max()


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("engines")  # one export shared by the tests below (~1 min on a loaded CPU)


@pytest.mark.slow  # the export: ~20 s on a free core, 1-2 min on the loaded 2-core dev machine
def test_onnx_export_parity_through_the_runtime_backend(da_dir, engine_cache):
    """backend onnxruntime: the ONNX exported at the camera's processed size into the engine cache (parity
    checked at export), run through depth_nodes.runtime.create_backend; the H x W result equals torch's."""
    from depth_nodes.runtime.onnx_io import read_onnx

    ref = load_hf_model(da_dir, device="cpu")
    ort_m = load_hf_model(da_dir, device="cpu", backend="onnxruntime", engine_cache_dir=engine_cache,
                          camera_hw=(60, 200))  # fmt: skip
    assert ort_m.backend == "onnxruntime" and ort_m.runtime.kind == "onnxruntime"
    files = list(engine_cache.glob("*.onnx"))
    assert len(files) == 1 and read_onnx(files[0]).resolution == (70, 238)
    for seed in (3, 4):
        img = _street(60, 200, seed)
        a, b = ref.predict(img)[0], ort_m.predict(img)[0]
        assert a.shape == b.shape == (60, 200) and np.ptp(a) > 0.1  # m: the output varies over the image
        assert np.abs(a - b).max() <= min(1e-4 * np.abs(a).max(), 1e-3 * np.ptp(a)), np.abs(a - b).max()
    with pytest.raises(MonoModelError, match=r"made for 70x238 inputs, this 60x100 camera needs 70x112: set model_res"):
        ort_m.predict(_street(60, 100))
    again = load_hf_model(da_dir, device="cpu", backend="onnxruntime", engine_cache_dir=engine_cache,
                          camera_hw=(60, 200))  # fmt: skip
    assert again.runtime.onnx_path == files[0]  # the cached export is reused


@pytest.mark.slow
def test_tensorrt_goes_through_the_runtime_factory(da_dir, engine_cache, monkeypatch):
    """mono_backend tensorrt: the DA ONNX goes to depth_nodes.runtime.create_backend with the processed size as
    the engine's profile, the precision and device as configured (a spy that runs ONNX Runtime instead: no GPU
    here; the engine build itself is the runtime's, tested there)."""
    import depth_nodes.runtime as rt
    from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend

    calls = []

    def spy(model, backend, precision, device, cache, resolutions, *a, **kw):
        calls.append((Path(model).suffix, backend, precision, device, resolutions))
        return OnnxRuntimeBackend(model)

    monkeypatch.setattr(rt, "create_backend", spy)
    m = load_hf_model(da_dir, device="cpu", backend="tensorrt", precision="fp16", engine_cache_dir=engine_cache,
                      camera_hw=(60, 200))  # fmt: skip
    assert calls == [(".onnx", "tensorrt", "fp16", "cpu", [(70, 238)])]
    assert m.predict(_street(60, 200))[0].shape == (60, 200)
