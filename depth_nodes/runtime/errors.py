"""Errors of the model runtime: each names the file or setting at fault and what to do about it."""

from depth_nodes.errors import DepthNodesError


class ModelError(DepthNodesError):
    """A model, its config, weights or ONNX file is missing, corrupt or does not match what is expected."""


class EngineError(ModelError):
    """A TensorRT engine cannot be built, loaded or run (corrupt file, version drift, profile mismatch)."""


class BackendUnavailableError(ModelError):
    """The requested inference backend cannot run here (library missing, no CUDA GPU)."""


class ParityError(ModelError):
    """An exported or compiled model disagrees with its reference beyond the tolerance."""
