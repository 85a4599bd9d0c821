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
