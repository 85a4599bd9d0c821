"""Model inference runtime: one :class:`Backend` interface over PyTorch, ONNX Runtime and TensorRT (10.x, 11.x).

Importing this package is cheap (no torch, onnxruntime or tensorrt); each backend imports its library when it
is created. See docs/runtime.md.
"""

from depth_nodes.runtime.base import BACKENDS, PRECISIONS, Backend
from depth_nodes.runtime.errors import BackendUnavailableError, EngineError, ModelError, ParityError
from depth_nodes.runtime.factory import choose_backend, create_backend

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Backend",
    "BackendUnavailableError",
    "EngineError",
    "ModelError",
    "ParityError",
    "choose_backend",
    "create_backend",
]
