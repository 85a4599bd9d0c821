"""Completers by name: ``create("ip_basic")``, ``available()``; new completers call :func:`register`."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from depth_nodes.completion.base import Completer
from depth_nodes.completion.conditioning import occlusion_filter

_FACTORIES: dict[str, Callable[..., Completer]] = {}
_DESCRIPTIONS: dict[str, str] = {}
#: Modules that register completers on import (lazy, so heavy optional deps load only when used).
_PROVIDERS = (
    "depth_nodes.completion.baselines",
    "depth_nodes.completion.ip_basic",
    "depth_nodes.completion.guided",
    "depth_nodes.mono.completer",  # mono, mono:NAME (depth-nodes eval --method mono)
    "depth_nodes.pipeline.learned_completer",
)

DEFAULT_COMPLETER = "guided"


def register(
    name: str, description: str = ""
) -> Callable[[Callable[..., Completer]], Callable[..., Completer]]:
    """Decorator registering a completer factory (a class or a function returning a Completer)."""

    def deco(factory: Callable[..., Completer]) -> Callable[..., Completer]:
        _FACTORIES[name] = factory
        doc_lines = (factory.__doc__ or "").strip().splitlines()
        _DESCRIPTIONS[name] = description or (doc_lines[0] if doc_lines else "")
        return factory

    return deco


def _load_providers() -> None:
    for mod in _PROVIDERS:
        try:
            import_module(mod)
        except ModuleNotFoundError as exc:  # a provider not written yet or an optional dependency missing
            if exc.name != mod:
                raise


def available() -> dict[str, str]:
    """Registered completer names with one-line descriptions."""
    _load_providers()
    return dict(sorted(_DESCRIPTIONS.items()))


def create(name: str, **params) -> Completer:
    """Build the completer registered as ``name`` with keyword parameters.

    ``occlusion`` (every completer): the see-through filter applied to raw input -- an
    ``OcclusionFilter``, a dict of its parameters, ``"default"`` or ``"off"``/None
    (:func:`depth_nodes.completion.conditioning.occlusion_filter`); absent: the completer's own (the
    defaults; none for the published baselines).
    """
    _load_providers()
    if name not in _FACTORIES:
        raise KeyError(f"unknown completer {name!r}; available: {', '.join(sorted(_FACTORIES))}")
    has_filter = "occlusion" in params
    flt = occlusion_filter(params.pop("occlusion")) if has_filter else None
    completer = _FACTORIES[name](**params)
    if has_filter:
        completer.occlusion = flt
    return completer
