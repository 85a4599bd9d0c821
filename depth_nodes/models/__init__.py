"""Learned depth models: a registry of TensorRT-friendly families, each a JSON config + safetensors weights.

``models.create(name, config)``, ``models.save(model, dir)``, ``models.load(dir)``, ``models.available()``.
Importing this package does not import torch; creating or loading a model does.
"""

from depth_nodes.models.catalog import COMPLETION_FAMILIES, LEARNED, shipped_model_dir
from depth_nodes.models.published import PUBLISHED
from depth_nodes.models.registry import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    Family,
    available,
    config_hash,
    config_of,
    create,
    family,
    full_config,
    load,
    read_config,
    read_state_dict,
    register,
    save,
)

__all__ = [
    "COMPLETION_FAMILIES",
    "PUBLISHED",
    "LEARNED",
    "shipped_model_dir",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "Family",
    "available",
    "config_hash",
    "config_of",
    "create",
    "family",
    "full_config",
    "load",
    "read_config",
    "read_state_dict",
    "register",
    "save",
]
