"""Any ONNX by contract: small torch models exported to ONNX with a sidecar model.json (ENet/PENet-style inputs:
rgb 0..255, d metres, u/v position map, K), run through the contract path and compared with torch on inputs
built here from the contract's stated semantics; wrong sidecars give errors naming the field."""

from __future__ import annotations

import json
import logging
import shutil
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0 then .[ml])")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[ml]')")

from depth_nodes.runtime.contract import ContractError, load_contract  # noqa: E402
from depth_nodes.runtime.contract_model import ContractModel  # noqa: E402
from depth_nodes.runtime.predictor import LearnedOptions, build_predictor  # noqa: E402

PENET_JSON = {
    "format": "depth_nodes.onnx_contract/1",
    "name": "toy_penet",
    "inputs": {
        "rgb": {"source": "image", "layout": "NCHW", "units": "0..255"},
        "d": {"source": "depth", "layout": "NCHW", "units": "metres"},
        "position": {"source": "position", "layout": "NCHW", "units": "uv_-1..1"},
        "K": {"source": "intrinsics", "units": "pixels"},
    },
    "outputs": {"output": {"kind": "metric"}},
    "size": {"stride": 32},
}


class ToyPENet(torch.nn.Module):
    """Uses every input: a conv over rgb/255, d and the position map, plus fx from K; metric depth > 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(6, 1, 3, padding=1)

    def forward(self, rgb, d, position, K):
        x = torch.cat([rgb / 255.0, d / 10.0, position], 1)
        return 5.0 + torch.nn.functional.softplus(self.conv(x)) * 3.0 + K[:, 0, 0].view(-1, 1, 1, 1) / 100.0 + 0.5 * d


class ToyInverseNHWC(torch.nn.Module):
    """NHWC normalised image (mean/std), inverse-depth LiDAR input, inverse-depth output + confidence."""

    def forward(self, image, inv):
        x = image.permute(0, 3, 1, 2)
        inv_out = 0.05 + 0.01 * torch.sigmoid(x.mean(1, keepdim=True)) + 0.5 * inv
        return inv_out, torch.sigmoid(x[:, :1])


def _export(model, args, names, out_names, path, dyn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(model.eval(), args, str(path), input_names=names, output_names=out_names, opset_version=18,
                          dynamo=True, dynamic_shapes=dyn, external_data=False)  # fmt: skip


@pytest.fixture(scope="module")
def penet_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("contract") / "toy_penet"
    d.mkdir()
    torch.set_num_threads(1)
    m = ToyPENet()
    h, w = torch.export.Dim("h", min=1, max=64), torch.export.Dim("w", min=1, max=64)
    dims = {2: 32 * h, 3: 32 * w}
    args = (torch.rand(1, 3, 64, 96) * 255, torch.rand(1, 1, 64, 96) * 40, torch.rand(1, 2, 64, 96), torch.eye(3)[None])
    _export(m, args, ["rgb", "d", "position", "K"], ["output"], d / "model.onnx",
            {"rgb": dims, "d": dims, "position": dims, "K": None})  # fmt: skip
    (d / "model.json").write_text(json.dumps(PENET_JSON))
    return d, m


def _frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), np.uint8)
    sparse = np.where(rng.random((h, w)) < 0.1, rng.uniform(2, 60, (h, w)), 0).astype(np.float32)
    K = np.array([[180.0, 0, w / 2], [0, 180.0, h * 0.45], [0, 0, 1]])
    return rgb, sparse, K


def _reference(m, rgb, sparse, K, ph, pw):
    """The contract's semantics written out: pad bottom/right (image replicated, depth zero), u/v ramps over the
    camera image continued into the padding, K unchanged; output cropped back."""
    h, w = sparse.shape
    img = np.pad(rgb.astype(np.float32), ((0, ph - h), (0, pw - w), (0, 0)), mode="edge").transpose(2, 0, 1)[None]
    d = np.pad(sparse, ((0, ph - h), (0, pw - w)))[None, None]
    u = 2 * np.arange(pw) / (w - 1) - 1
    v = 2 * np.arange(ph) / (h - 1) - 1
    pos = np.stack([np.tile(u, (ph, 1)), np.tile(v[:, None], (1, pw))])[None].astype(np.float32)
    with torch.inference_mode():
        out = m(*(torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in (img, d, pos, K[None])))
    return out.numpy()[0, 0, :h, :w]


@pytest.mark.parametrize("hw", [(64, 96), (60, 90)], ids=["multiple-of-stride", "padded"])
def test_contract_model_matches_torch(penet_dir, hw):
    d, m = penet_dir
    est = build_predictor(LearnedOptions(model_dir=str(d), backend="onnxruntime", resolutions=[(64, 96)]))
    assert est.name == "learned:onnx_contract:toy_penet" and est.backend.kind == "onnxruntime"
    assert est.needs_image and est.needs_lidar
    rgb, sparse, K = _frame(*hw)
    ref = _reference(m, rgb, sparse, K, 64, 96)
    out = est.predict(rgb, sparse, K)
    assert out.depth.shape == hw and np.isfinite(out.depth).all() and np.ptp(ref) > 1.0
    np.testing.assert_allclose(out.depth, ref, rtol=1e-5, atol=1e-4)


def test_inverse_nhwc_mean_std_and_confidence(tmp_path):
    m = ToyInverseNHWC()
    _export(m, (torch.rand(1, 32, 48, 3), torch.rand(1, 1, 32, 48)), ["image", "inv"], ["inv_depth", "conf"],
            tmp_path / "model.onnx", None)  # fmt: skip
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    (tmp_path / "model.json").write_text(json.dumps({
        "format": "depth_nodes.onnx_contract/1",
        "inputs": {"image": {"source": "image", "layout": "NHWC", "units": "0..1", "mean": mean, "std": std},
                   "inv": {"source": "depth", "layout": "NCHW", "units": "inverse_depth"}},
        "outputs": {"inv_depth": {"kind": "inverse"}, "conf": {"kind": "confidence"}},
        "size": {"fixed": [32, 48], "fit": "pad"}}))  # fmt: skip
    est = build_predictor(LearnedOptions(model_dir=str(tmp_path / "model.onnx"), backend="onnxruntime"))
    rgb, sparse, K = _frame(30, 40, seed=2)
    img = np.pad(rgb.astype(np.float32) / 255.0, ((0, 2), (0, 8), (0, 0)), mode="edge")
    img = (img - np.float32(mean)) / np.float32(std)
    inv = np.zeros((1, 1, 32, 48), np.float32)
    inv[0, 0, :30, :40] = np.divide(1.0, sparse, out=np.zeros_like(sparse), where=sparse > 0)
    with torch.inference_mode():
        r_inv, r_conf = (t.numpy()[0, 0, :30, :40] for t in m(torch.from_numpy(img[None]), torch.from_numpy(inv)))
    out = est.predict(rgb, sparse, K)
    np.testing.assert_allclose(out.depth, 1.0 / r_inv, rtol=1e-5)
    np.testing.assert_allclose(out.confidence, r_conf, atol=1e-6)
    with pytest.raises(Exception, match="larger than the fixed network input 32x48"):
        est.predict(*_frame(40, 40)[:2], K)


def _sidecar(d, tmp_path, **changes):
    bad = tmp_path / "bad"
    bad.mkdir(exist_ok=True)
    shutil.copy(d / "model.onnx", bad / "model.onnx")
    doc = json.loads(json.dumps(PENET_JSON))
    for path, value in changes.items():
        *keys, last = path.split("__")
        node = doc
        for k in keys:
            node = node[k]
        if value is None:
            del node[last]
        else:
            node[last] = value
    (bad / "model.json").write_text(json.dumps(doc))
    return bad


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"inputs__K": None}, r"inputs: graph input 'K' of model.onnx is not declared"),
        ({"inputs__uv2": {"source": "position", "units": "uv_-1..1"}}, r"inputs.uv2: no graph input of that name"),
        ({"inputs__rgb__layout": "NHWC"}, r"inputs.rgb.layout: NHWC reads .* channels .*is it NCHW\?"),
        ({"inputs__rgb__layout": "NCWH"}, r"inputs.rgb.layout: 'NCWH' is not one of NCHW, NHWC"),
        ({"inputs__d__units": "feet"}, r"inputs.d.units: unknown unit 'feet' for a depth input; use metres or inverse"),
        ({"inputs__position__source": "uv"}, r"inputs.position.source: 'uv' is not one of"),
        ({"outputs": {"output": {"kind": "disparity"}}}, r"outputs.output.kind: 'disparity' is not one of metric"),
        ({"outputs": {"depth": {"kind": "metric"}}}, r"outputs.depth: no graph output of that name"),
        ({"size": {"stride": 0}}, r"size.stride: needs a positive integer"),
        ({"format": "v0"}, r"format: needs 'depth_nodes.onnx_contract/1'"),
        ({"colour": "rgb"}, r"colour: unknown key"),
    ],
    ids=["missing-input", "undeclared-name", "wrong-layout", "unknown-layout", "unknown-unit", "unknown-source",
         "unknown-output-kind", "missing-output", "bad-stride", "format", "unknown-key"],  # fmt: skip
)
def test_wrong_sidecars_name_the_field(penet_dir, tmp_path, changes, message):
    bad = _sidecar(penet_dir[0], tmp_path, **changes)
    with pytest.raises(ContractError, match=message):
        load_contract(bad)


def test_a_bad_sidecar_makes_the_node_estimator_fall_back_with_the_reason(penet_dir, tmp_path):
    from depth_nodes.pipeline.learned_estimator import GuardedLearnedEstimator

    bad = _sidecar(penet_dir[0], tmp_path, inputs__d__units="feet")
    est = GuardedLearnedEstimator(LearnedOptions(model_dir=str(bad), backend="onnxruntime"), background=False,
                                  log_warning=lambda s: None)  # fmt: skip
    values, warnings_ = est.diagnostics()
    assert est.state == "fallback" and "inputs.d.units: unknown unit 'feet'" in values["learned_reason"]
    assert warnings_


def test_relative_output_is_fitted_to_the_frames_lidar(penet_dir, tmp_path):
    """kind relative (affine-invariant inverse depth): scale and shift come from the frame's LiDAR."""

    class Rel(torch.nn.Module):
        def forward(self, image):
            return image.mean(1, keepdim=True)

    _export(Rel(), (torch.rand(1, 3, 32, 64),), ["image"], ["disp"], tmp_path / "model.onnx", None)
    (tmp_path / "model.json").write_text(json.dumps({
        "format": "depth_nodes.onnx_contract/1",
        "inputs": {"image": {"source": "image", "units": "0..255"}},
        "outputs": {"disp": {"kind": "relative"}}, "size": {"fixed": [32, 64], "fit": "resize"}}))  # fmt: skip
    c = load_contract(tmp_path)
    from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend

    model = ContractModel(c, OnnxRuntimeBackend(c.onnx_path))
    h, w = 64, 128
    ramp = np.tile(np.linspace(20, 220, w, dtype=np.float32), (h, 1))
    rgb = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    pred = model.raw(rgb, None, None)[0]
    truth = 1.0 / (0.002 * pred + 0.01)  # the world: inverse depth affine in the model's output
    sparse = np.zeros((h, w), np.float32)
    sparse[::4, ::3] = truth[::4, ::3]
    out = model.predict(rgb, sparse, None)
    ok = np.isfinite(out.depth)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(out.depth[ok], truth[ok], rtol=1e-3)


def test_tensorrt_goes_through_the_runtime_factory(penet_dir, monkeypatch):
    """backend tensorrt: the contract's ONNX goes to the runtime's create_backend with the network's size as the
    engine profile (a spy running ONNX Runtime: no GPU here; engines are the runtime's, tested there)."""
    from depth_nodes.runtime import factory
    from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend

    calls = []

    def spy(model, backend, precision, device, cache, resolutions, *a, **kw):
        calls.append((model.name, backend, precision, resolutions))
        b = OnnxRuntimeBackend(model)
        b.kind = "tensorrt"  # what the estimator reports
        return b

    monkeypatch.setattr(factory, "create_backend", spy)
    est = build_predictor(LearnedOptions(model_dir=str(penet_dir[0]), backend="tensorrt", precision="fp16",
                                       resolutions=[(60, 90)]))  # fmt: skip
    assert calls == [("model.onnx", "tensorrt", "fp16", [(64, 96)])]  # padded to the stride
    rgb, sparse, K = _frame(60, 90)
    ref = _reference(penet_dir[1], rgb, sparse, K, 64, 96)
    np.testing.assert_allclose(est.predict(rgb, sparse, K).depth, ref, rtol=1e-5, atol=1e-4)
    from depth_nodes.pipeline.learned_estimator import GuardedLearnedEstimator

    stand_in = GuardedLearnedEstimator._make_stand_in(None, est)  # the guard's ORT stand-in during an engine rebuild
    assert stand_in.backend.kind == "onnxruntime" and stand_in.name == est.name
    np.testing.assert_allclose(stand_in.predict(rgb, sparse, K).depth, ref, rtol=1e-5, atol=1e-4)
