"""Input conditioning of sparse LiDAR depth: the one place that turns raw input into what completers expect.

Raw sparse depth -- one scan projected with a plain z-buffer, as KITTI DC ships its ``velodyne_raw`` --
holds *see-through* returns: background points that the LiDAR saw past a foreground object's edge but the
camera, a few decimetres away, cannot see (parallax), plus background leaking between the rings of a
foreground surface. Every completer would smear them into the foreground. The project removes them with
one filter (:class:`depth_nodes.core.projection.OcclusionFilter`, the enclosure test), applied exactly
once on every path:

- the node and ``depth-nodes make-gt`` filter while projecting (``scan_to_depth``) and hand the completer
  conditioned input (``complete(..., conditioned=True)``);
- :meth:`depth_nodes.completion.Completer.complete` filters raw input itself (the default), so
  ``depth-nodes complete`` / ``eval`` / ``bench completion``, the robustness suite and training data see
  what the node sees.

The filter is idempotent (removing hidden returns never uncovers another hidden one: it only takes away
occluders), so conditioning conditioned input again changes nothing; declaring it only saves the time.
The published baselines (``ip_basic``, ``ip_basic_multiscale``) keep their paper setting, raw input,
unless given a filter (``occlusion=...``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from depth_nodes.core.projection import OcclusionFilter, remove_occluded
from depth_nodes.errors import OcclusionFilterError

#: The filter of the node, make-gt and the completers (defaults for spinning LiDARs; see OcclusionFilter).
DEFAULT_OCCLUSION = OcclusionFilter()
#: Words that turn the filter off / select the default, as ``occlusion=`` values and CLI arguments.
OFF_WORDS = ("off", "none", "false", "no")
DEFAULT_WORDS = ("default", "on", "true", "yes")
#: Input kinds a caller can declare (CLI ``--raw`` / ``--conditioned``).
INPUT_KINDS = ("raw", "conditioned")


@dataclass
class Conditioned:
    """Conditioned sparse depth (0 = no return) and the mask of the returns the filter removed."""

    depth: np.ndarray
    removed: np.ndarray | None  # bool H x W, None when nothing was filtered

    @property
    def n_removed(self) -> int:
        return 0 if self.removed is None else int(np.count_nonzero(self.removed))


def filter_names() -> tuple[str, ...]:
    """Parameter names of the filter (``vertical_px``, ...), for messages and CLIs."""
    return tuple(f.name for f in fields(OcclusionFilter))


def occlusion_filter(spec: object) -> OcclusionFilter | None:
    """A filter from ``spec``: an :class:`OcclusionFilter`, None / False / "off" (no filtering), True /
    "default" (the defaults) or a dict of filter parameters (the rest default). Unknown names or bad
    values raise :class:`OcclusionFilterError` naming them."""
    if isinstance(spec, OcclusionFilter):
        return spec
    if spec is None or spec is False:
        return None
    if spec is True:
        return DEFAULT_OCCLUSION
    if isinstance(spec, str):
        word = spec.strip().lower()
        if word in OFF_WORDS:
            return None
        if word in DEFAULT_WORDS:
            return DEFAULT_OCCLUSION
        raise OcclusionFilterError(
            f"occlusion filter {spec!r}: expected one of {', '.join(OFF_WORDS + DEFAULT_WORDS)} or parameters "
            f"({', '.join(filter_names())})"
        )
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(filter_names()))
        if unknown:
            raise OcclusionFilterError(
                f"unknown occlusion filter parameter(s) {', '.join(map(str, unknown))}; known: "
                f"{', '.join(filter_names())}"
            )
        return OcclusionFilter(**spec)
    raise OcclusionFilterError(
        f"occlusion filter must be an OcclusionFilter, a dict of parameters, 'default' or 'off'; got {spec!r}"
    )


def parse_filter_args(items: list[str] | None) -> OcclusionFilter | None | str:
    """CLI ``--occlusion`` values (``off``, ``default`` or repeated ``KEY=VALUE``) -> a filter, None, or
    ``"keep"`` when none were given (each completer keeps its own setting)."""
    if not items:
        return "keep"
    if len(items) == 1 and "=" not in items[0]:
        return occlusion_filter(items[0])
    params: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OcclusionFilterError(f"--occlusion expects KEY=VALUE, 'default' or 'off'; got {item!r}")
        params[key.strip()] = _number(key.strip(), value.strip())
    return occlusion_filter(params)


def _number(key: str, text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise OcclusionFilterError(f"--occlusion {key}={text!r}: not a number") from None


def condition(sparse: np.ndarray, flt: OcclusionFilter | None = DEFAULT_OCCLUSION) -> Conditioned:
    """Remove the see-through returns of raw sparse depth (H x W float32 m, 0 = none); ``flt`` None: as is."""
    if flt is None:
        return Conditioned(sparse, None)
    depth, removed = remove_occluded(sparse, flt)
    return Conditioned(depth, removed)


__all__ = [
    "DEFAULT_OCCLUSION",
    "INPUT_KINDS",
    "Conditioned",
    "condition",
    "filter_names",
    "occlusion_filter",
    "parse_filter_args",
]
