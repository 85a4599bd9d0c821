"""Image corruptions (RoboDepth / KITTI-C): each does what its severity table says."""

import cv2
import numpy as np
import pytest

from depth_nodes.errors import InputShapeError
from depth_nodes.eval.robustness.image_corruptions import (
    IMAGE_CORRUPTIONS,
    IMAGE_FAMILIES,
    SEVERITY_PARAMS,
    corrupt_image,
    motion_kernel,
)


def _scene(h=96, w=160, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 120, np.uint8)
    img[20:60, 30:90] = (200, 40, 40)
    img[50:90, 100:150] = (30, 160, 60)
    return np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)


def _rng(s=0):
    return np.random.default_rng(s)


def test_names_and_families_are_robodepths_18():
    assert len(IMAGE_CORRUPTIONS) == 18
    assert sorted(sum(IMAGE_FAMILIES.values(), ())) == sorted(IMAGE_CORRUPTIONS)
    assert all(len(SEVERITY_PARAMS[n]) == 5 for n in IMAGE_CORRUPTIONS)


@pytest.mark.parametrize("name", sorted(IMAGE_CORRUPTIONS))
def test_every_corruption_changes_more_with_severity(name):
    img = _scene()
    diffs = []
    for sev in (1, 5):
        out = corrupt_image(img, name, sev, _rng(1))
        assert out.shape == img.shape and out.dtype == np.uint8
        diffs.append(np.abs(out.astype(float) - img).mean())
    assert diffs[0] > 0
    assert diffs[1] > diffs[0], f"{name}: severity 5 ({diffs[1]:.2f}) not worse than 1 ({diffs[0]:.2f})"
    # deterministic for a seed
    assert np.array_equal(corrupt_image(img, name, 3, _rng(7)), corrupt_image(img, name, 3, _rng(7)))


def test_jpeg_quality_maps_as_documented():
    img = _scene()
    for sev, quality in enumerate([25, 18, 15, 10, 7], 1):
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        ref = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(corrupt_image(img, "jpeg_compression", sev, _rng()), ref)


def test_gaussian_noise_std_matches_table():
    img = np.full((200, 200, 3), 128, np.uint8)
    for sev in (1, 3):
        d = corrupt_image(img, "gaussian_noise", sev, _rng(sev)).astype(float) - 128
        assert abs(d.std() / 255 - SEVERITY_PARAMS["gaussian_noise"][sev - 1]) < 0.004


def test_shot_noise_is_poisson_with_the_photon_count():
    img = np.full((200, 200, 3), 128, np.uint8)
    c = SEVERITY_PARAMS["shot_noise"][1]  # 25 photons per unit
    d = corrupt_image(img, "shot_noise", 2, _rng()).astype(float) / 255
    assert abs(d.var() - (128 / 255) / c) / ((128 / 255) / c) < 0.1


def test_impulse_noise_hits_the_stated_fraction():
    img = np.full((200, 200, 3), 128, np.uint8)
    out = corrupt_image(img, "impulse_noise", 4, _rng())
    hit = (out == 0) | (out == 255)
    assert abs(hit.mean() - 0.17) < 0.01
    assert abs((out == 255).sum() / hit.sum() - 0.5) < 0.05


def test_color_quant_keeps_the_stated_bits():
    img = _scene()
    for sev, bits in enumerate([5, 4, 3, 2, 1], 1):
        out = corrupt_image(img, "color_quant", sev, _rng())
        assert not (out & np.uint8(0xFF >> bits)).any()
        assert np.array_equal(out, img & np.uint8((0xFF << (8 - bits)) & 0xFF))


def test_brightness_adds_to_hsv_value_and_contrast_scales_deviation():
    img = np.full((10, 10, 3), (100, 50, 25), np.uint8)
    out = corrupt_image(img, "brightness", 2, _rng())
    v_in = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)[..., 2]
    v_out = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)[..., 2]
    assert np.allclose(v_out - v_in, 0.2, atol=2.5 / 255)
    img2 = np.zeros((10, 20, 3), np.uint8)
    img2[:, 10:] = 200
    out2 = corrupt_image(img2, "contrast", 1, _rng()).astype(float)
    assert np.allclose(out2[0, 10] - out2[0, 0], 0.4 * 200, atol=1.0)


def test_pixelate_makes_blocks_and_dark_squeezes_the_range():
    img = _scene(100, 160)
    out = corrupt_image(img, "pixelate", 5, _rng())  # factor 0.25: 4 x 4 blocks
    assert np.array_equal(out[0:4, 0:4], np.broadcast_to(out[0, 0], (4, 4, 3)))
    dark = corrupt_image(img, "dark", 5, _rng())  # range squeezed to [0, 0.2] before noise
    assert np.percentile(dark, 99) <= 0.2 * 255 + 15


def test_motion_kernel_is_normalised_and_horizontal_at_zero_angle():
    k = motion_kernel(10, 3, 0.0)
    assert abs(k.sum() - 1) < 1e-6
    rows = np.flatnonzero(k.sum(axis=1) > 0)
    assert rows.size == 1


def test_bad_input_is_named():
    with pytest.raises(InputShapeError, match="H x W x 3 uint8"):
        corrupt_image(np.zeros((4, 4), np.uint8), "fog", 1, _rng())
    with pytest.raises(KeyError, match="unknown image corruption"):
        corrupt_image(_scene(), "rain", 1, _rng())
    with pytest.raises(ValueError, match="severity"):
        corrupt_image(_scene(), "fog", 6, _rng())
