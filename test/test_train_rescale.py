"""Sensor augmentation of training crops: another focal length (rescale), another azimuth step (decimation)."""

from __future__ import annotations

import numpy as np

from depth_nodes.data.kitti_depth import write_frame
from depth_nodes.train.data import Augment, FrameSet, Source, make_sample
from depth_nodes.train.rescale import decimate_columns, draw_scale, rescale_sample, scatter_nearest


def _plane_frame(f_px: float, h: int, w: int):
    """A tilted plane z = 10 + 0.5 * Y seen by a pinhole camera of focal f_px; returns on every 3rd row."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    ray_y = (v + 0.5 - h / 2) / f_px
    z = 10.0 / (1.0 - 0.5 * ray_y)  # the plane z = 10 + 0.5 * Y with Y = z * ray_y
    sparse = np.where(v % 3 == 0, z, 0).astype(np.float32)
    return z.astype(np.float32), sparse, u


def test_downscale_keeps_the_nearest_return_and_only_input_values() -> None:
    sp = np.zeros((10, 10), np.float32)
    sp[2, 2], sp[2, 3], sp[3, 2], sp[7, 7] = 5.0, 3.0, 4.0, 9.0  # three returns share an output pixel at 1/2
    rings = np.full((10, 10), -1, np.int16)
    rings[2, 2], rings[2, 3], rings[3, 2], rings[7, 7] = 1, 2, 3, 4
    img = np.zeros((10, 10, 3), np.uint8)
    _, out, tgt, r = rescale_sample(img, sp, sp, rings, (5, 5))
    assert out[1, 1] == 3.0 and r[1, 1] == 2  # the nearest wins, and carries its own ring
    assert out[3, 3] == 9.0 and r[3, 3] == 4
    assert np.count_nonzero(out) == 2 and np.array_equal(out, tgt)
    assert (r[out == 0] == -1).all()


def test_upscale_spreads_returns_and_matches_a_longer_focal_length() -> None:
    """Rescaling the window by s must give the depths a camera with s x the focal length sees at those pixels."""
    h, w, f = 60, 80, 50.0
    dense, sparse, _ = _plane_frame(f, h, w)
    out = scatter_nearest(sparse, (2.0, 2.0), (2 * h, 2 * w))
    ys, xs = np.nonzero(out)
    assert ys.size == np.count_nonzero(sparse)  # nothing lost, nothing invented
    assert np.all(np.diff(np.unique(ys)) == 6)  # rows 3 px apart become 6 px apart
    truth, _, _ = _plane_frame(2 * f, 2 * h, 2 * w)  # the same plane through a 2x focal length
    err = np.abs(out[ys, xs] - truth[ys, xs])
    assert err.max() < 0.02 * truth[ys, xs].max()  # within the sub-pixel position of the re-projection
    dense_out = scatter_nearest(dense, (0.5, 0.5), (h // 2, w // 2))
    assert np.count_nonzero(dense_out) == (h // 2) * (w // 2)  # dense GT stays dense when downscaled


def test_draw_scale_fits_the_frame() -> None:
    rng = np.random.default_rng(0)
    s = [draw_scale(rng, (352, 1216), (192, 448), (0.5, 2.0)) for _ in range(200)]
    assert min(s) >= 192 / 352 - 1e-9 and max(s) <= 2.0 and np.median(s) > 0.9


def test_decimate_columns_keeps_every_kth_column() -> None:
    sp = np.ones((4, 24), np.float32)
    out = decimate_columns(sp, np.random.default_rng(3), steps=(4,))
    cols = np.nonzero(out.any(axis=0))[0]
    assert np.all(np.diff(cols) == 4) and out[:, cols].all()


def test_samples_with_sensor_augmentation_keep_shape_and_real_depths(tmp_path) -> None:
    h, w = 64, 128
    dense, sparse, _ = _plane_frame(60.0, h, w)
    img = np.full((h, w, 3), 90, np.uint8)
    K = np.array([[60.0, 0, w / 2], [0, 60.0, h / 2], [0, 0, 1]])
    write_frame(tmp_path, "drive", 0, img, sparse, dense, K)
    fs = FrameSet([Source.parse(f"{tmp_path}:gt")])
    aug = Augment(scale_prob=1.0, azimuth_prob=1.0, ring_dropout=0.0, point_dropout=0.0, noise_rel=0.0,
                  exposure=0.0, flip=False)  # fmt: skip
    stored = np.unique(np.round(sparse[sparse > 0] * 256) / 256)  # the PNG's metres x 256 quantisation
    sizes = set()
    for i in range(12):
        s = make_sample(fs, i, seed=0, epoch=0, crop_hw=(32, 64), aug=aug)
        assert s.image.shape == (32, 64, 3) and s.sparse.shape == s.target.shape == (32, 64)
        vals = s.sparse[s.sparse > 0]
        assert vals.size and np.isin(np.round(vals * 256) / 256, stored).all()  # re-projected, never blended
        assert np.count_nonzero(s.sparse.any(axis=0)) < 64  # azimuth decimation removed columns
        sizes.add(int(np.count_nonzero(s.target)))
    assert len(sizes) > 3  # different scales give different supervision densities
