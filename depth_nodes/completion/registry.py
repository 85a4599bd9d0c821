"""Completers by name: ``create("ip_basic")``, ``available()``.

:data:`COMPLETERS` is the one table of shipped completers: name -> (``"module:factory"``, fixed keyword
arguments, description). A module is imported when its completer is created, so heavy optional libraries
load only when used; no module registers itself on import. The table also names the completers that live
above ``completion/`` (``mono*`` in :mod:`depth_nodes.mono.completer`, ``learned*`` in
:mod:`depth_nodes.pipeline.learned_completer`) as strings, the way entry points do: ``completion/`` imports
none of them. :func:`register` adds a completer at run time (``bench completion --model NAME=DIR``, tests).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from depth_nodes.completion.base import Completer
from depth_nodes.completion.conditioning import occlusion_filter

_OWN_FIT = "scale fitted on this frame's own input LiDAR (param model_dir)"
#: name -> ("module:factory", fixed keyword arguments (a caller's parameters override them), description)
COMPLETERS: dict[str, tuple[str, dict, str]] = {
    "nearest": (
        "depth_nodes.completion.baselines:NearestCompleter", {},
        "nearest LiDAR return per pixel (Voronoi fill); confidence from distance to it",
    ),
    "ip_basic": (
        "depth_nodes.completion.ip_basic:IPBasicCompleter", {"mode": "fast"},
        "IP-Basic fast (Ku et al. 2018) as published: extrapolate, Gaussian blur; no image",
    ),
    "ip_basic_multiscale": (
        "depth_nodes.completion.ip_basic:IPBasicCompleter", {"mode": "multiscale"},
        "IP-Basic multi-scale (Ku et al. 2018) as published: bilateral; no image",
    ),
    "guided": (
        "depth_nodes.completion.guided:GuidedCompleter", {"use_image": True},
        "ring-free morphological completion in inverse depth (default); confidence from the near/far spread",
    ),
    "lidar_only": (
        "depth_nodes.completion.guided:GuidedCompleter", {"use_image": False},
        "the guided completer without the image (camera lost)",
    ),
    "guided_extrapolate": (
        "depth_nodes.completion.guided:GuidedCompleter", {"use_image": True, "extrapolate": True},
        "guided with extrapolate=True (IP-Basic's option: estimates above the top return too); for benchmarks",
    ),
    "mono": ("depth_nodes.mono.completer:MonoCompleter", {"kind": "mono"}, f"monocular mono, {_OWN_FIT}"),
    "mono:depth_anything_v2": (
        "depth_nodes.mono.completer:MonoCompleter", {"kind": "depth_anything_v2"},
        f"monocular depth_anything_v2, {_OWN_FIT}",
    ),
    "mono:prompt_depth_anything": (
        "depth_nodes.mono.completer:MonoCompleter", {"kind": "prompt_depth_anything"},
        f"monocular prompt_depth_anything, {_OWN_FIT}",
    ),
    "learned": (
        "depth_nodes.pipeline.learned_completer:LearnedCompleter", {},
        "the node's `completer: learned`: the shipped learned model (residual + propagation), backend auto, "
        "classical fallback reported",
    ),
    "learned_torch": (
        "depth_nodes.pipeline.learned_completer:LearnedCompleter", {"backend": "torch"},
        "the shipped learned model on torch (CPU or CUDA)",
    ),
}  # fmt: skip
#: Completers added at run time with :func:`register` (they win over the table).
_FACTORIES: dict[str, Callable[..., Completer]] = {}
_DESCRIPTIONS: dict[str, str] = {}

DEFAULT_COMPLETER = "guided"


def register(
    name: str, description: str = ""
) -> Callable[[Callable[..., Completer]], Callable[..., Completer]]:
    """Decorator registering a completer factory (a class or a function returning a Completer) at run time."""

    def deco(factory: Callable[..., Completer]) -> Callable[..., Completer]:
        _FACTORIES[name] = factory
        doc_lines = (factory.__doc__ or "").strip().splitlines()
        _DESCRIPTIONS[name] = description or (doc_lines[0] if doc_lines else "")
        return factory

    return deco


def available() -> dict[str, str]:
    """Completer names with one-line descriptions."""
    return dict(sorted({**{n: d for n, (_, _, d) in COMPLETERS.items()}, **_DESCRIPTIONS}.items()))


def _factory(name: str) -> Callable[..., Completer]:
    if name in _FACTORIES:
        return _FACTORIES[name]
    if name not in COMPLETERS:
        raise KeyError(f"unknown completer {name!r}; available: {', '.join(available())}")
    target, fixed, _ = COMPLETERS[name]
    module, _, attr = target.partition(":")
    factory = getattr(import_module(module), attr)
    return lambda **params: factory(**{**fixed, **params})


def create(name: str, **params) -> Completer:
    """Build the completer registered as ``name`` with keyword parameters.

    ``occlusion`` (every completer): the see-through filter applied to raw input -- an
    ``OcclusionFilter``, a dict of its parameters, ``"default"`` or ``"off"``/None
    (:func:`depth_nodes.completion.conditioning.occlusion_filter`); absent: the completer's own (the
    defaults; none for the published baselines).
    """
    factory = _factory(name)
    has_filter = "occlusion" in params
    flt = occlusion_filter(params.pop("occlusion")) if has_filter else None
    completer = factory(**params)
    if has_filter:
        completer.occlusion = flt
    return completer
