"""Estimators: the :class:`Estimator` protocol, the completer adapter, the registry and the
:class:`EstimatorSelector` (the one place that decides which estimator serves which mode)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from depth_nodes import completion
from depth_nodes.completion.base import Completion, returns_kept
from depth_nodes.core.camera import CameraModel
from depth_nodes.core.projection import SparseDepth
from depth_nodes.errors import EmptyInputError
from depth_nodes.pipeline.modes import GUIDED, LIDAR_ONLY, MONOCULAR, NONE

#: Completer used when a configured one is not registered in this build.
FALLBACK_COMPLETER = "ip_basic"


@dataclass
class FrameInputs:
    """What one frame gives an estimator. ``rgb`` is None for LiDAR-driven frames (camera stale)."""

    camera: CameraModel
    stamp_ns: int
    frame_id: str
    rgb: np.ndarray | None = None
    sparse: SparseDepth | None = None
    #: The node's ``max_depth_m`` (m): completers follow it (IP-Basic's inversion constant); None = theirs.
    max_depth_m: float | None = None


class Estimator(Protocol):
    """Anything that turns :class:`FrameInputs` into depth + confidence (classical, learned, monocular)."""

    name: str
    needs_image: bool
    needs_lidar: bool

    def estimate(self, inputs: FrameInputs) -> Completion: ...


class CompleterEstimator:
    """Adapts a :class:`~depth_nodes.completion.Completer` (sparse depth + optional RGB) to :class:`Estimator`."""

    needs_lidar = True

    def __init__(self, completer: completion.Completer, needs_image: bool | None = None) -> None:
        self.completer = completer
        self.name = completer.name
        self.needs_image = completer.uses_image if needs_image is None else needs_image

    def estimate(self, inputs: FrameInputs) -> Completion:
        if inputs.sparse is None:
            raise EmptyInputError("no LiDAR depth for a LiDAR-based estimator")
        comp = self.completer
        if inputs.max_depth_m is not None and comp.max_depth_m != inputs.max_depth_m:
            comp.max_depth_m = float(inputs.max_depth_m)
        # The frame pipeline's projection already removed the see-through returns (scan_to_depth):
        # declared conditioned, so the completer does not filter again.
        out = comp.complete(inputs.sparse.depth, inputs.rgb if comp.uses_image else None, conditioned=True)
        if out.kept_returns is None and comp.keeps_returns:
            out.kept_returns = returns_kept(out, inputs.sparse.depth)
        return out


#: Estimators that are not plain completers (learned with its fallback, monocular), by name ->
#: ("module:factory", fixed keyword arguments). The module is imported when the estimator is selected, so
#: torch / onnxruntime / transformers load only when configured; no module registers itself on import.
#: Each factory is called as ``factory(log=..., **fixed, **options)`` with the selector's options. A name
#: here wins over a completer of the same name.
BUILTIN_ESTIMATORS: dict[str, tuple[str, dict]] = {
    "learned": ("depth_nodes.pipeline.learned_estimator:learned_factory", {}),
    "mono": ("depth_nodes.mono.fallback_estimator:create_estimator", {"kind": "mono"}),
    "depth_anything_v2": ("depth_nodes.mono.fallback_estimator:create_estimator", {"kind": "depth_anything_v2"}),
    "prompt_depth_anything": (
        "depth_nodes.mono.fallback_estimator:create_estimator", {"kind": "prompt_depth_anything"},
    ),
}  # fmt: skip
#: Estimators added at run time with :func:`register_estimator` (plug-ins, tests); they win over the table.
ESTIMATORS: dict[str, Callable[..., Estimator]] = {}
#: Names in :data:`ESTIMATORS` whose factory takes the selector's ``options`` (backend, model_dir ...) and ``log``.
_TAKES_OPTIONS: set[str] = set()


def register_estimator(name: str, factory: Callable[..., Estimator], takes_options: bool = False) -> None:
    """Make ``name`` selectable as the estimator of any mode (``completer``, ``monocular_estimator`` ...).

    ``takes_options``: the factory is called as ``factory(log=..., **options)`` with the selector's options.
    """
    ESTIMATORS[name] = factory
    (_TAKES_OPTIONS.add if takes_options else _TAKES_OPTIONS.discard)(name)


def estimator_names() -> list[str]:
    """Every name :class:`EstimatorSelector` builds as an estimator rather than as a completer."""
    return sorted({*BUILTIN_ESTIMATORS, *ESTIMATORS})


def estimator_factory(name: str) -> tuple[Callable[..., Estimator], bool]:
    """``(factory, takes_options)`` of estimator ``name`` (imports its module); KeyError when unknown."""
    if name in ESTIMATORS:
        return ESTIMATORS[name], name in _TAKES_OPTIONS
    target, fixed = BUILTIN_ESTIMATORS[name]
    module, _, attr = target.partition(":")
    from importlib import import_module

    factory = getattr(import_module(module), attr)
    return (lambda **options: factory(**{**fixed, **options})), True


def _create_completer(name: str, log: Callable[[str], None]) -> tuple[completion.Completer, str]:
    try:
        return completion.create(name), name
    except KeyError:
        log(f"completer {name!r} is not registered in this build: using {FALLBACK_COMPLETER!r} instead")
        return completion.create(FALLBACK_COMPLETER), FALLBACK_COMPLETER


class EstimatorSelector:
    """The one place that maps a mode to its estimator.

    ``guided`` -> the configured guided completer, ``lidar_only`` -> the configured LiDAR-only completer,
    ``monocular`` -> a monocular estimator when one is registered (none yet: the reason is reported),
    ``none`` -> nothing. A missing completer falls back to ``ip_basic`` and says so through ``log``.
    """

    MONOCULAR_MISSING = "no monocular estimator is available in this build yet: nothing is published"

    def __init__(
        self,
        guided: str = completion.DEFAULT_COMPLETER,
        lidar_only: str = "lidar_only",
        monocular: str = "",
        log: Callable[[str], None] = print,
        options: dict | None = None,
    ) -> None:
        self.options = dict(options or {})
        self._log = log
        self.requested = {GUIDED: guided, LIDAR_ONLY: lidar_only, MONOCULAR: monocular}
        self._by_mode: dict[str, Estimator | None] = {MONOCULAR: None, NONE: None}
        self.active_names = {MONOCULAR: "", NONE: ""}
        # Guided mode is camera + LiDAR by definition, even when the completer ignores the image; a
        # LiDAR-only mode never receives an image, whatever the completer could use.
        for mode, name, needs_image in ((GUIDED, guided, True), (LIDAR_ONLY, lidar_only, False)):
            if name in estimator_names():
                self._by_mode[mode], self.active_names[mode] = self._make(name), name
            else:
                comp, used = _create_completer(name, log)
                self._by_mode[mode] = CompleterEstimator(comp, needs_image=needs_image)
                self.active_names[mode] = used
        if monocular in estimator_names():
            self._by_mode[MONOCULAR], self.active_names[MONOCULAR] = self._make(monocular), monocular
        elif monocular:
            log(
                f"monocular estimator {monocular!r} is not available in this build: monocular mode publishes nothing"
            )

    def _make(self, name: str) -> Estimator:
        factory, takes_options = estimator_factory(name)
        return factory(log=self._log, **self.options) if takes_options else factory()

    def diagnostics(self) -> tuple[dict[str, str], list[str]]:
        """(key/values, warnings) of estimators that report their own state (learned: backend, fallback)."""
        values: dict[str, str] = {}
        warnings: list[str] = []
        for est in {id(e): e for e in self._by_mode.values() if e is not None}.values():
            if hasattr(est, "diagnostics"):
                v, w = est.diagnostics()
                values.update(v)
                warnings += w
        return values, warnings

    def close(self) -> None:
        """Release estimators holding runtimes (learned models: sessions, engines) before shutdown."""
        for est in {id(e): e for e in self._by_mode.values() if e is not None}.values():
            if hasattr(est, "close"):
                est.close()

    def for_mode(self, mode: str) -> Estimator | None:
        return self._by_mode.get(mode)

    def why_not(self, mode: str) -> str:
        """Why ``mode`` has no estimator (empty when it has one)."""
        if self._by_mode.get(mode) is not None:
            return ""
        if mode == MONOCULAR:
            return self.MONOCULAR_MISSING
        return "no usable input: nothing is published"
