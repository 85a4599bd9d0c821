"""``depth-nodes build-engine model.onnx --precision fp32|fp16|int8 [--calib-dir FRAMES]`` (CUDA GPU + TensorRT)."""

from depth_nodes.runtime.engine_tools import add_build_arguments as add_arguments
from depth_nodes.runtime.engine_tools import run_build as run

__all__ = ["add_arguments", "run"]
