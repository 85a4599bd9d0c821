"""The node keeps exactly the returns the completer kept, and every completer follows max_depth_m."""

from __future__ import annotations

import numpy as np
import pytest

from depth_nodes import pipeline as pl
from depth_nodes.completion import create
from depth_nodes.completion.base import Completer, Completion
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import SparseDepth

H, W = 60, 80


def sparse_grid(value: float = 10.0) -> np.ndarray:
    d = np.zeros((H, W), np.float32)
    d[10::4, ::2] = value
    return d


def inputs(sparse: np.ndarray, max_depth_m: float | None = None) -> pl.FrameInputs:
    cam = CameraModel(W, H, np.array([[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]]))
    sd = SparseDepth(sparse, int(np.count_nonzero(sparse)), int(np.count_nonzero(sparse)), 0)
    return pl.FrameInputs(cam, 1, "cam", None, sd, max_depth_m)


class DropsOne(Completer):
    """Keeps its returns exactly except one, which it replaces (a see-through return)."""

    name, keeps_returns = "drops_one", True

    def _complete(self, sparse, image):
        depth = np.where(sparse > 0, sparse, 10.0).astype(np.float32)
        depth[10, 0] = 3.0  # the return at (10, 0) was judged hidden: the near surface's depth instead
        return Completion(depth, np.full(sparse.shape, 0.5, np.float32))


@pytest.mark.parametrize("explicit", [False, True])
def test_a_return_the_completer_dropped_is_not_written_back(explicit) -> None:
    sparse = sparse_grid(20.0)
    est = pl.CompleterEstimator(DropsOne())
    out = est.estimate(inputs(sparse))
    if explicit:  # a completer may also say it directly
        mask = sparse > 0
        mask[10, 0] = False
        out = Completion(out.depth, out.confidence, mask)
    kept = pl.keep_returns(out, sparse)
    assert kept.depth[10, 0] == 3.0 and kept.confidence[10, 0] == 0.5
    others = sparse > 0
    others[10, 0] = False
    assert np.all(kept.depth[others] == 20.0) and np.all(kept.confidence[others] == 1.0)


def test_a_smoothing_completer_gets_all_its_returns_back() -> None:
    sparse = sparse_grid()
    sparse[30, 40] = 30.0  # an outlier the IP-Basic median filter smooths away
    est = pl.CompleterEstimator(create("ip_basic_multiscale"))
    out = est.estimate(inputs(sparse))
    assert out.kept_returns is None and out.depth[30, 40] != 30.0
    kept = pl.keep_returns(out, sparse)
    assert kept.depth[30, 40] == 30.0 and np.all(kept.confidence[sparse > 0] == 1.0)


@pytest.mark.parametrize("name", ["nearest", "ip_basic", "ip_basic_multiscale", "guided", "lidar_only"])
def test_every_completer_follows_the_nodes_max_depth(name) -> None:
    est = pl.CompleterEstimator(create(name))
    far = sparse_grid(110.0)
    out = est.estimate(inputs(far, 120.0))
    assert est.completer.max_depth_m == 120.0
    hit = far > 0
    assert np.nanmax(out.depth) <= 120.0 and np.isfinite(out.depth[hit]).mean() > 0.95
    np.testing.assert_allclose(out.depth[hit][np.isfinite(out.depth[hit])], 110.0, atol=0.05)
    out = est.estimate(inputs(far, 100.0))  # changed at runtime: 110 m returns now lie beyond it
    assert est.completer.max_depth_m == 100.0
    assert np.isnan(out.depth).all() or np.nanmax(out.depth) <= 100.0
