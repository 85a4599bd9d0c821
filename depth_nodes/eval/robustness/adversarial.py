"""PGD (Madry et al. 2018) on the camera image against any differentiable estimator.

An estimator is differentiable when it (or the completer it wraps) exposes
``torch_forward(image, sparse) -> depth``: ``image`` a 1 x 3 x H x W float tensor in [0, 1], ``sparse``
1 x 1 x H x W metres (0 = no return), ``depth`` 1 x 1 x H x W (or H x W) metres. None of the classical
completers is (they are OpenCV pipelines); learned ones register one. The attack maximises the mean
absolute error against the ground truth (or, without GT, against the clean prediction) inside the L-inf
ball of radius ``eps`` / 255, with random start, ``steps`` signed-gradient steps of ``eps / 4`` (at least
1/255 / 4) and projection, then quantises to uint8 (which stays inside the ball: eps is a whole number of
grey levels). torch is imported only here, lazily.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BUDGETS_255 = (1, 2, 4, 8)
DEFAULT_STEPS = 10


def torch_forward_of(estimator) -> Callable | None:
    """The estimator's ``torch_forward`` (or that of the completer it wraps), or None."""
    for obj in (estimator, getattr(estimator, "completer", None)):
        fn = getattr(obj, "torch_forward", None)
        if callable(fn):
            return fn
    return None


def pgd_attack(
    forward: Callable,
    image: np.ndarray,
    sparse: np.ndarray,
    eps_255: float,
    *,
    target: np.ndarray | None = None,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> np.ndarray:
    """The adversarial uint8 image (H x W x 3 RGB) within ``eps_255`` grey levels of ``image``."""
    import torch

    x0 = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    s = torch.from_numpy(np.asarray(sparse, np.float32))[None, None]
    eps = float(eps_255) / 255.0
    alpha = max(eps / 4.0, 0.25 / 255.0)
    with torch.no_grad():
        ref = torch.as_tensor(np.asarray(target, np.float32)) if target is not None else None
        if ref is None:
            ref = forward(x0, s).reshape(x0.shape[-2:]).detach()
    mask = torch.isfinite(ref) & (ref > 0)
    if not bool(mask.any()):
        return np.asarray(image).copy()
    gen = torch.Generator().manual_seed(int(seed))
    x = (x0 + (torch.rand(x0.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(int(steps)):
        x.requires_grad_(True)
        pred = forward(x, s).reshape(x0.shape[-2:])
        loss = (pred[mask] - ref[mask]).abs().mean()
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x + alpha * grad.sign()
            x = torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0, 1)
    adv = np.rint(x.detach()[0].permute(1, 2, 0).numpy() * 255.0)
    lo = np.asarray(image, np.float64) - eps_255
    hi = np.asarray(image, np.float64) + eps_255
    return np.clip(np.clip(adv, lo, hi), 0, 255).astype(np.uint8)
