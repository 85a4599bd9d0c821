"""Depth completers behind one interface (:class:`Completer`), created by name from the registry."""

from depth_nodes.completion.base import Completer, Completion
from depth_nodes.completion.registry import DEFAULT_COMPLETER, available, create, register

__all__ = ["DEFAULT_COMPLETER", "Completer", "Completion", "available", "create", "register"]
