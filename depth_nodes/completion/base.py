"""The completer interface: sparse metric depth (+ optional RGB) -> dense depth and confidence."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from depth_nodes.completion.conditioning import DEFAULT_OCCLUSION, condition
from depth_nodes.core.projection import OcclusionFilter
from depth_nodes.errors import InputShapeError


@dataclass
class Completion:
    """Output of a completer: ``depth`` H x W float32 metres (NaN = no estimate), ``confidence`` 0..1.

    ``kept_returns`` (bool H x W or None): the input returns the completer keeps as measurements; a
    return outside it was dropped on purpose (a see-through or parallax return) and must not be written
    back by the node. None: the completer says nothing (the node keeps every return it was given).
    """

    depth: np.ndarray
    confidence: np.ndarray
    kept_returns: np.ndarray | None = None


class Completer(ABC):
    """Base class of every depth completer (classical or learned).

    Subclasses set ``name`` and ``uses_image`` and implement :meth:`_complete`; :meth:`complete` validates
    input so that every completer rejects bad arrays with the same clear messages.
    """

    name: str = "base"
    #: True when the completer uses the RGB image (guided); False for LiDAR-only completers.
    uses_image: bool = False
    #: True when every return the completer keeps is in its output depth exactly, so that a return whose
    #: output differs was dropped on purpose (see :func:`returns_kept`). False: it smooths its returns.
    keeps_returns: bool = False
    #: Farthest depth used (m): returns beyond it are ignored and no estimate exceeds it. Subclasses take
    #: it as a constructor parameter; the node sets it from its ``max_depth_m`` (attribute, per frame).
    max_depth_m: float = 200.0
    #: The see-through filter applied to raw input (:mod:`depth_nodes.completion.conditioning`); None =
    #: raw input is completed as given (the published baselines). ``create(name, occlusion=...)`` sets it.
    occlusion: OcclusionFilter | None = DEFAULT_OCCLUSION

    def complete(
        self, sparse: np.ndarray, image: np.ndarray | None = None, *, conditioned: bool = False
    ) -> Completion:
        """Complete ``sparse`` (H x W float32 metres, 0 or NaN = no return) guided by ``image`` (H x W x 3 uint8 RGB).

        ``sparse`` is raw by default (one scan projected with a plain z-buffer, as KITTI DC's
        ``velodyne_raw``): its see-through returns are removed first with :attr:`occlusion`.
        ``conditioned=True`` declares it already filtered (the node, make-gt: they filter while
        projecting), and it is not filtered again. Returns the filter removed are not in
        ``Completion.kept_returns``.
        """
        sparse = validate_sparse(sparse, self.max_depth_m)
        if image is not None:
            image = validate_image(image, sparse.shape)
        cond = condition(sparse, None if conditioned else self.occlusion)
        out = self._complete(cond.depth, image if self.uses_image else None)
        if cond.n_removed:
            kept = out.kept_returns
            if kept is None:
                kept = returns_kept(out, cond.depth) if self.keeps_returns else cond.depth > 0
            out.kept_returns = kept & ~cond.removed
        return out

    @abstractmethod
    def _complete(self, sparse: np.ndarray, image: np.ndarray | None) -> Completion:
        """Complete a validated sparse map (float32, 0 = no return)."""


def validate_sparse(sparse: np.ndarray, max_depth_m: float = np.inf) -> np.ndarray:
    """Return ``sparse`` as contiguous float32 with 0 for missing (NaN/inf/negative/beyond ``max_depth_m`` -> 0)."""
    arr = np.asarray(sparse)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputShapeError(f"sparse depth must be an H x W array (H, W >= 2), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputShapeError(f"sparse depth must be floating-point metres, got dtype {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(out) | (out < 0) | (out > max_depth_m)
    if bad.any():
        out = out.copy() if out is arr else out
        out[bad] = 0.0
    return out


def returns_kept(out: Completion, sparse: np.ndarray, rel_tol: float = 1e-5) -> np.ndarray:
    """Input returns a :attr:`Completer.keeps_returns` completer kept: its depth equals the return there."""
    hit = sparse > 0
    with np.errstate(invalid="ignore"):
        return hit & (np.abs(out.depth - sparse) <= rel_tol * sparse)


def validate_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Check an H x W x 3 uint8 RGB image (or H x W mono, expanded) of the given shape."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise InputShapeError(f"image must be H x W x 3 RGB, got shape {img.shape}")
    if img.shape[:2] != tuple(shape):
        raise InputShapeError(f"image size {img.shape[:2]} does not match sparse depth size {tuple(shape)}")
    if img.dtype != np.uint8:
        raise InputShapeError(f"image must be uint8, got dtype {img.dtype}")
    return np.ascontiguousarray(img[..., :3])


def distance_confidence(distance_px: np.ndarray, scale_px: float) -> np.ndarray:
    """Confidence that decays with pixel distance to the nearest LiDAR support: exp(-d / scale)."""
    return np.exp(-np.asarray(distance_px, dtype=np.float32) / np.float32(scale_px)).astype(np.float32)
