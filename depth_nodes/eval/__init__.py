"""Evaluation: KITTI devkit metrics, sparsification/AUSE, the evaluator, reports and benchmarks."""

from depth_nodes.eval.metrics import METRIC_UNITS, depth_metrics, fill_background, mean_metrics
from depth_nodes.eval.sparsification import Sparsification, random_confidence, sparsification

__all__ = [
    "METRIC_UNITS",
    "Sparsification",
    "depth_metrics",
    "fill_background",
    "mean_metrics",
    "random_confidence",
    "sparsification",
]
