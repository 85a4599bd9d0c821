"""The shipped `learned` checkpoint: in the package, small, loads, ORT = torch, and serves `completer: learned`."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0 then .[ml])")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[ml]')")

from depth_nodes import models  # noqa: E402
from depth_nodes.pipeline.learned_estimator import GuardedLearnedEstimator  # noqa: E402
from depth_nodes.runtime.frames import street_frame  # noqa: E402
from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend  # noqa: E402
from depth_nodes.runtime.predictor import LearnedOptions  # noqa: E402
from depth_nodes.runtime.preprocess import Normalisation, crop_outputs, to_inputs_numpy  # noqa: E402

SHIPPED = models.shipped_model_dir()


def test_shipped_checkpoint_is_complete_and_small() -> None:
    files = {p.name: p.stat().st_size for p in SHIPPED.iterdir()}
    assert {models.CONFIG_FILE, models.WEIGHTS_FILE, "model.onnx"} <= set(files)
    assert sum(files.values()) <= 10 * 2**20
    m = models.load(SHIPPED)
    assert models.config_of(m)["model"] == "learned"


def test_shipped_onnx_matches_torch_within_a_millimetre() -> None:
    m = models.load(SHIPPED)
    ort = OnnxRuntimeBackend(SHIPPED / "model.onnx")
    img, sp = street_frame(352, 1216, seed=5)
    feed = to_inputs_numpy(img, sp, Normalisation(), m.stride)
    with torch.inference_mode():
        d, c = m(*(torch.from_numpy(feed[n]) for n in m.input_names))
    ref, _ = crop_outputs({"depth": d.numpy(), "confidence": c.numpy()}, *sp.shape)
    got, _ = crop_outputs(ort.infer(feed), *sp.shape)
    assert np.nanmax(np.abs(got - ref)) <= 1e-3  # metres (issue 14)


def test_learned_without_model_dir_runs_the_shipped_checkpoint() -> None:
    g = GuardedLearnedEstimator(LearnedOptions(backend="onnxruntime"), background=False, log_warning=lambda s: None)
    assert g.state == "active", g.reason
    assert g.name == "learned:learned"
    img, sp = street_frame(64, 128, seed=2)

    class Inputs:
        rgb, sparse = img, type("S", (), {"depth": sp})()

    out = g.estimate(Inputs())
    ret = sp > 0
    assert np.isfinite(out.depth).mean() > 0.5
    assert np.nanmedian(np.abs(out.depth[ret] - sp[ret]) / sp[ret]) < 0.05  # returns kept


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_learned_completer_threads_reach_the_backend(backend: str) -> None:
    """``create("learned", threads=N)`` sets the backend's CPU threads (the bench pins them this way)."""
    from depth_nodes.completion import create

    name = "learned" if backend == "onnxruntime" else "learned_torch"
    before = torch.get_num_threads()
    try:
        comp = create(name, threads=1)
        assert comp.estimator().learned.backend.threads == 1
        assert create(name).estimator().learned.backend.threads == 0
    finally:
        torch.set_num_threads(before)  # the torch backend sets the process-wide count
