"""``depth-nodes check-engine model.onnx [--engine E]``: engine vs ONNX Runtime on frames, FPS per precision."""

from depth_nodes.runtime.engine_tools import add_check_arguments as add_arguments
from depth_nodes.runtime.engine_tools import run_check as run

__all__ = ["add_arguments", "run"]
