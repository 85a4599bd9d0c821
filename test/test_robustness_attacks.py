"""PGD (generic, on a tiny torch model), LiDAR spoofing spread, and the cheap defences."""

import numpy as np
import pytest

from depth_nodes.completion.registry import create
from depth_nodes.eval.robustness import adversarial, defences, spoofing
from depth_nodes.eval.robustness.runner import make_estimator


def _plane_sparse(h=40, w=80, depth=10.0):
    s = np.zeros((h, w), np.float32)
    s[::4, ::2] = depth
    return s


def test_isolated_returns_are_rejected_and_surfaces_kept():
    s = _plane_sparse()
    spiky = s.copy()
    spiky[8, 10] = 3.0  # a spurious return on the surface
    out = defences.reject_isolated_returns(spiky)
    assert out[8, 10] == 0
    assert np.array_equal(out > 0, (s > 0) & ~((np.arange(40)[:, None] == 8) & (np.arange(80)[None] == 10)))


def test_consistency_filter_drops_returns_the_other_half_contradicts():
    s = _plane_sparse()
    s[20, 40] = 2.0
    comp = create("nearest")
    out, frac = defences.consistency_filter(s, lambda x: comp.complete(x).depth)
    assert out[20, 40] == 0 and out[20, 42] == 10.0
    assert 0 < frac < 0.01


def test_spoof_spread_counts_changes_outside_the_box_only():
    region = spoofing.SpoofRegion(10, 10, 8, 5.0)
    clean = np.full((40, 40), 10.0, np.float32)
    att = clean.copy()
    att[10:18, 10:18] = 5.0  # inside: does not count as spread
    att[10:18, 18:21] = 5.0  # 3 columns leak to the right
    r = spoofing.spread(clean, att, region)
    assert r["changed_inside_frac"] == 1.0 and r["changed_outside_px"] == 24 and r["spread_max_px"] == 3


def test_injected_returns_land_in_the_box_at_the_phantom_depth():
    from depth_nodes.core.camera import CameraModel
    from depth_nodes.core.projection import scan_to_depth

    cam = CameraModel(
        120, 80, np.array([[100.0, 0, 60], [0, 100.0, 40], [0, 0, 1]]), np.zeros(5), "plumb_bob"
    )
    T = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    region = spoofing.SpoofRegion(30, 50, 12, 6.0)
    pts = spoofing.inject(np.zeros((0, 4), np.float32), region, 50, cam, T, np.random.default_rng(0))
    d = scan_to_depth(pts[:, :3], T, cam, occlusion=None).depth
    v, u = np.nonzero(d)
    assert v.min() >= 30 and v.max() < 42 and u.min() >= 50 and u.max() < 62
    assert np.allclose(d[d > 0], 6.0, rtol=0.021)


def test_classical_estimators_are_not_differentiable():
    for name in ("guided", "ip_basic", "nearest"):
        assert make_estimator(name).torch_forward is None


def test_pgd_raises_the_error_of_a_differentiable_estimator_within_the_budget():
    torch = pytest.importorskip("torch", reason="torch (pip install torch==2.13.0) needed for PGD")
    torch.manual_seed(0)

    class TinyDepth(torch.nn.Module):  # depth = sparse-fill + image-dependent correction
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

        def forward(self, image, sparse):
            base = torch.nn.functional.avg_pool2d(sparse, 5, 1, 2) * 25 / 2
            return base + 2.0 * torch.tanh(self.conv(image))

    model = TinyDepth()

    def forward(img, sparse):
        return model(img, sparse)

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    sparse = np.zeros((24, 32), np.float32)
    sparse[::5, ::5] = 10.0
    with torch.no_grad():
        img_t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        gt = forward(img_t, torch.from_numpy(sparse)[None, None])[0, 0].numpy()  # the clean output is exact

    def err(img):
        with torch.no_grad():
            t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
            return float(np.abs(forward(t, torch.from_numpy(sparse)[None, None])[0, 0].numpy() - gt).mean())

    errors = []
    for eps in adversarial.BUDGETS_255:
        adv = adversarial.pgd_attack(forward, image, sparse, eps, target=gt, seed=1)
        assert np.abs(adv.astype(int) - image).max() <= eps
        errors.append(err(adv))
    noise = np.clip(image.astype(int) + rng.choice([-8, 8], image.shape), 0, 255).astype(np.uint8)
    assert errors[0] > 0 and all(b > a for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] > 2 * err(noise)  # far worse than random noise of the same size

    class Wrapped:  # a completer exposing torch_forward is found through the estimator handle
        torch_forward = staticmethod(forward)

    assert adversarial.torch_forward_of(Wrapped()) is not None


def _learned_err(comp, image, sparse, gt):
    d = comp.run(image, sparse).depth
    ok = (gt > 0) & np.isfinite(d)
    return float(np.abs(d[ok] - gt[ok]).mean())


def test_pgd_raises_the_error_of_the_shipped_learned_model():
    pytest.importorskip("torch", reason="torch (pip install torch==2.13.0) needed for learned_torch / PGD")
    from depth_nodes.runtime.frames import street_frame

    image, sparse = street_frame(64, 192, seed=5)
    held = np.random.default_rng(0).random(sparse.shape) < 0.3  # GT: 30 % of the returns, held out
    gt = np.where(held, sparse, 0).astype(np.float32)
    inp = np.where(held, 0, sparse).astype(np.float32)
    comp = make_estimator("learned_torch")
    assert comp.torch_forward is not None  # the shipped model on torch is differentiable
    clean = _learned_err(comp, image, inp, gt)
    adv = adversarial.pgd_attack(comp.torch_forward, image, inp, 8, target=gt, steps=5, seed=1)
    assert np.abs(adv.astype(int) - image).max() <= 8
    rng = np.random.default_rng(1)
    noise = np.clip(image.astype(int) + rng.choice([-8, 8], image.shape), 0, 255).astype(np.uint8)
    noisy = _learned_err(comp, image=noise, sparse=inp, gt=gt)
    attacked = _learned_err(comp, adv, inp, gt)
    # The model leans on the LiDAR (a grey image moves its depth by ~9 cm on this frame), so the rise is
    # centimetres, but it is a rise, and random sign noise of the same budget barely moves the error.
    assert attacked - clean > 0.01 and attacked - clean > 10 * abs(noisy - clean), (clean, noisy, attacked)


def test_mono_torch_forward_matches_its_numpy_prediction():
    pytest.importorskip("torch", reason="torch (pip install torch==2.13.0) needed for the mono net")
    import torch

    from depth_nodes.mono.own import load_own_model
    from depth_nodes.runtime.frames import street_frame

    model = load_own_model()
    image, _ = street_frame(64, 192, seed=2)
    K = np.array([[model.focal_px, 0, 96], [0, model.focal_px, 30], [0, 0, 1]])  # training focal: no resize
    x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255).requires_grad_(True)
    d = model.torch_forward(x, K)
    d.mean().backward()
    assert float(x.grad.abs().sum()) > 0  # gradients reach the pixels
    assert np.allclose(d.detach()[0, 0].numpy(), model.predict(image, K), rtol=1e-3, atol=1e-3)
