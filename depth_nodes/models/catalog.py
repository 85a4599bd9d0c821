"""Registrations of the completion families (builders imported lazily: importing this does not import torch).

``learned`` (propagation on top of residual) is the shipped default; its trained checkpoint lives in
``depth_nodes/models/weights/learned/`` (:func:`shipped_model_dir`).
"""

from __future__ import annotations

from pathlib import Path

from depth_nodes.models.registry import FUSION_IO_INPUTS, FUSION_IO_OUTPUTS, Family, register

LEARNED = "learned"
#: ``clamp_px`` 15: where returns lie both in the upper and the lower half of a pixel's 15 x 15 window, the estimate
#: stays within their range (blocks.envelope_clamp; ``[rows, cols]`` for another shape); a checkpoint saved before
#: the parameter existed gets it too (defaults fill missing parameters).
_COMMON = {
    "width": 16,
    "levels": 3,
    "head_hidden": 8,
    "min_depth_m": 1.0,
    "max_depth_m": 120.0,
    "decoder": "light",
    "clamp_px": 15,
}
_FAMILIES = {
    "unguided": (
        "families:Unguided",
        {k: v for k, v in {**_COMMON, "levels": 0}.items() if k != "decoder"},
        "sparsity-invariant (normalised) convolutions on the sparse depth alone, 1/4 res + full-res head",
    ),
    "early_fusion": (
        "families:EarlyFusion",
        _COMMON,
        "image + sparse inverse depth concatenated into one U-Net at 1/4 res + full-res head",
    ),
    "late_fusion": (
        "families:LateFusion",
        _COMMON,
        "image and depth encoders fused (image-gated) in the decoder, 1/4 res + full-res head",
    ),
    "residual": (
        "families:Residual",
        _COMMON,
        "residual + confidence over an in-graph classical prefill (image, sparse, prefill, its confidence in)",
    ),
    LEARNED: (
        "propagation:Propagation",
        {**_COMMON, "iterations": 6},
        "residual + CSPN++/NLSPN-style propagation (unrolled, normalised affinities, returns re-injected): "
        "the shipped default",
    ),
}

for _name, (_builder, _defaults, _desc) in _FAMILIES.items():
    register(
        Family(
            name=_name,
            builder=f"depth_nodes.models.{_builder}",
            defaults=dict(_defaults),
            description=_desc,
            inputs=FUSION_IO_INPUTS,
            outputs=FUSION_IO_OUTPUTS,
        )
    )

COMPLETION_FAMILIES = tuple(_FAMILIES)


def shipped_model_dir(name: str = LEARNED) -> Path:
    """Directory of the checkpoint shipped in the package for ``name`` (config.json + model.safetensors)."""
    return Path(__file__).resolve().parent / "weights" / name
