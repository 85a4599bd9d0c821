"""Camera pre/post-processing for ENet / PENet: crop/pad to 32, K and the position map, NaN, in-graph contract."""

from __future__ import annotations

import numpy as np
import pytest
from published_helpers import NPZ, need_fixtures

from depth_nodes.models.published import KITTI_DC_K, KITTI_P_RECT_02, KITTI_TRAIN_CY_OFFSET_PX
from depth_nodes.models.published_io import camera_inputs, fit_to_stride, position_map, to_camera
from depth_nodes.runtime.errors import ModelError

K_RAW = np.array([[KITTI_P_RECT_02[0], 0, KITTI_P_RECT_02[2]], [0, KITTI_P_RECT_02[1], KITTI_P_RECT_02[3]], [0, 0, 1]])


def _frame(h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    sparse = np.zeros((h, w), np.float32)
    sparse[h // 3 :: 4, ::3] = rng.uniform(2.0, 60.0, sparse[h // 3 :: 4, ::3].shape)
    sparse[-1, 0], sparse[-1, 1] = np.nan, -3.0  # not returns
    return rgb, sparse


def test_kitti_crop_gives_the_true_and_the_training_k() -> None:
    rgb, sparse = _frame(375, 1242)
    feed, place = camera_inputs(rgb, sparse, K_RAW, fit="crop")
    assert (place.top_px, place.left_px, place.net_hw) == (23, 13, (352, 1216))
    np.testing.assert_allclose(place.K_net[[0, 1, 0, 1], [0, 1, 2, 2]], KITTI_DC_K, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(feed["rgb"][0], rgb[23:, 13:-13].transpose(2, 0, 1))
    assert feed["d"].shape == (1, 1, 352, 1216) and feed["K"].dtype == np.float32
    # the released weights' convention: the official loader's load_calib (cx - 13, cy - 11.5)
    _, train = camera_inputs(rgb, sparse, K_RAW, fit="crop", cy_offset_px=KITTI_TRAIN_CY_OFFSET_PX)
    assert train.K_net[1, 2] == pytest.approx(172.854 - 11.5) and train.K_net[0, 2] == pytest.approx(609.5593 - 13)


def test_pad_keeps_k_and_every_pixel_and_cleans_the_depth() -> None:
    rgb, sparse = _frame(90, 150)
    feed, place = camera_inputs(rgb, sparse, K_RAW)
    assert place.net_hw == (96, 160) and (place.top_px, place.left_px) == (0, 0)
    np.testing.assert_array_equal(place.K_net, K_RAW)
    d = feed["d"][0, 0]
    assert d[-1, 0] == 0 and d[-1, 1] == 0 and (d[90:] == 0).all() and (d[:, 150:] == 0).all()
    np.testing.assert_array_equal(feed["rgb"][0, :, 95, :150], rgb[89].T.astype(np.float32))  # edge padding
    depth = np.full((96, 160), 7.0, np.float32)
    depth[0, 0], depth[1, 1], depth[2, 2] = -1.0, np.inf, 0.0
    out = to_camera(depth, place)
    assert out.shape == (90, 150) and np.isnan(out[[0, 1, 2], [0, 1, 2]]).all()
    assert np.count_nonzero(np.isnan(out)) == 3 and (out[np.isfinite(out)] == 7.0).all()


def test_crop_output_is_nan_outside_the_crop() -> None:
    rgb, sparse = _frame(100, 200)
    _, place = camera_inputs(rgb, sparse, K_RAW, fit="crop")
    assert (place.top_px, place.left_px, place.net_hw) == (4, 4, (96, 192))
    out = to_camera(np.full((96, 192), 5.0), place)
    assert np.isnan(out[:4]).all() and np.isnan(out[:, :4]).all() and np.isnan(out[:, 196:]).all()
    assert (out[4:, 4:196] == 5.0).all()


def test_position_maps_follow_the_official_loader() -> None:
    need_fixtures()
    z = np.load(NPZ)
    # the fixture's crop (rows 192-319, columns 320-767) of the 352 x 1216 frame, bit for bit
    got = position_map(128, 448, "kitti_352x1216", top_px=192, left_px=320)
    np.testing.assert_array_equal(got, z["position"][0])
    # the default geometry normalises over the network input itself: identical at 352 x 1216
    np.testing.assert_array_equal(position_map(352, 1216), position_map(352, 1216, "kitti_352x1216"))
    p = position_map(64, 96)
    assert p[0, 0, 0] == -1 and p[0, 0, -1] == 1 and p[1, 0, 0] == -1 and p[1, -1, 0] == 1


def test_bad_inputs_are_clear_errors() -> None:
    rgb, sparse = _frame(40, 40)
    with pytest.raises(ModelError, match="same size"):
        camera_inputs(rgb, sparse[:-1], K_RAW)
    with pytest.raises(ModelError, match="focal"):
        camera_inputs(rgb, sparse, np.zeros((3, 3)))
    with pytest.raises(ModelError, match="smaller than"):
        fit_to_stride(20, 40, fit="crop")
    with pytest.raises(ModelError, match="pad' or 'crop"):
        fit_to_stride(64, 64, fit="stretch")


def test_in_graph_contract_equals_the_official_inputs_path() -> None:
    """What the runtime runs (image 0..255 + inverse depth, position and K made in the graph) is the official
    forward on :func:`camera_inputs`' pad output with the config's K, in both geometry modes."""
    torch = pytest.importorskip("torch", reason="torch not installed")
    from depth_nodes import models
    from depth_nodes.models.published_io import geometry_hw, predict
    from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy

    rgb, sparse = _frame(60, 90, seed=3)
    K = np.array([[80.0, 0, 47.0], [0, 82.0, 29.5], [0, 0, 1]])
    torch.manual_seed(0)
    model = models.create("enet", {"fx_px": 80.0, "fy_px": 82.0, "cx_px": 47.0, "cy_px": 25.0, "cy_offset_px": 4.5})
    norm = Normalisation.from_contract(models.config_of(model)["inputs"])
    feed = to_inputs_numpy(rgb, sparse, norm, model.stride)
    with torch.inference_mode():
        graph = model(torch.from_numpy(feed["image"]), torch.from_numpy(feed["sparse_inv_depth"]))[0].numpy()
    official, place = camera_inputs(rgb, sparse, K)
    with torch.inference_mode():
        ref = model.official(*(torch.from_numpy(official[n]) for n in ("rgb", "d", "position", "K")),
                             hw=geometry_hw(place, "image"))[2].numpy()  # fmt: skip
    assert graph.shape == ref.shape == (1, 1, 64, 96)
    rel = np.abs(graph - ref).max() / np.abs(ref).max()
    assert rel < 1e-5, rel  # 1/(1/d) round trip of the sparse depth only
    np.testing.assert_allclose(predict(model, rgb, sparse, K), to_camera(ref, place), rtol=1e-5, atol=1e-5)
    # the other K changes the answer: K really reaches the geometry encoding
    _, wrong = camera_inputs(rgb, sparse, K, cy_offset_px=-10.0)
    other = predict(model, rgb, sparse, K, cy_offset_px=-10.0)
    assert wrong.K_net[1, 2] == pytest.approx(19.5) and np.nanmax(np.abs(other - to_camera(ref, place))) > 1e-3
