"""The shipped own mono net: package data under the 10 MB budget, loads strictly, metric output in range."""

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from depth_nodes.mono.hf import MonoModelError  # noqa: E402
from depth_nodes.mono.own import SHIPPED_DIR, load_own_model  # noqa: E402


def test_shipped_net_is_small_and_loads():
    size = sum(p.stat().st_size for p in SHIPPED_DIR.iterdir())
    assert size <= 10 * 2**20, f"shipped mono net is {size / 2**20:.1f} MB"
    m = load_own_model()
    assert m.name == "mono:mono_unet" and m.focal_px == 360.0
    from depth_nodes.runtime.frames import street_frame

    img, _ = street_frame(176, 608, seed=3)
    K = np.array([[360.0, 0, 304.0], [0, 360.0, 75.0], [0, 0, 1]])
    depth = m.predict(img, K)
    assert depth.shape == (176, 608) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and 1.0 <= depth.min() and depth.max() <= 80.0 + 1e-3
    # the ground below the horizon comes out nearer at the bottom than higher up (a road-scene prior at least)
    assert np.median(depth[-20:]) < np.median(depth[90:110])


def test_wrong_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(MonoModelError, match="lacks config.json"):
        load_own_model(tmp_path)


def test_auto_backend_prefers_the_shipped_onnx_and_matches_torch():
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (depth_nodes[ml])")
    from depth_nodes.runtime.frames import street_frame

    ort_m, torch_m = load_own_model(backend="auto"), load_own_model(backend="torch")
    assert (ort_m.backend, torch_m.backend, ort_m.stride) == ("onnxruntime", "torch", 16)
    img, _ = street_frame(120, 400, seed=5)
    K = np.array([[300.0, 0, 200.0], [0, 300.0, 52.0], [0, 0, 1]])  # not the training focal: resized
    a, b = ort_m.predict(img, K), torch_m.predict(img, K)
    assert a.shape == (120, 400) and np.abs(a - b).max() < 1e-2  # m; export parity is ~3e-4 m


def test_without_ml_the_node_estimator_is_unavailable_naming_the_reason(monkeypatch):
    """No onnxruntime and no torch importable: a clear reason, the estimator says so and never raises at build."""
    from depth_nodes.errors import EmptyInputError
    from depth_nodes.mono import own
    from depth_nodes.mono.fallback_estimator import GuardedMono, MonoOptions

    monkeypatch.setattr(own, "_importable", lambda name: False)
    with pytest.raises(MonoModelError, match=r"install depth_nodes\[ml\]"):
        load_own_model(backend="auto")
    warned = []
    est = GuardedMono("mono", MonoOptions(), warned.append, background=False)
    assert est.state == "unavailable" and warned == [est.reason]
    assert (
        est.reason.startswith("monocular estimator 'mono' unavailable: ") and "depth_nodes[ml]" in est.reason
    )
    values, warnings = est.diagnostics()
    assert warnings == [] and values["mono_state"] == est.reason  # guided stays OK; monocular: ERROR
    with pytest.raises(EmptyInputError, match="unavailable"):  # the pipeline turns this into "not published"
        est.estimate(None)
