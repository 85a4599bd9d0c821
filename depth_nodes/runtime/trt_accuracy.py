"""The accuracy gate of reduced-precision engines: fp16 / int8 depth vs ONNX Runtime fp32 on real frames.

Users of similar nodes report depth scale jumps with TensorRT 10.3 fp16 on Jetson; an fp16 overflow that gives
finite but wrong numbers passes the NaN/inf guard. So every fp16 / int8 engine is compared, at build (and each
load) and in ``depth-nodes check-engine``, with ONNX Runtime fp32 on the same frames (``--calib-dir`` /
``--frames`` when given, else the package's street frames), on the pixels where the reference depth is valid:

- ``mean_rel``: mean |engine - reference| / reference (a scale jump moves it directly);
- ``p99_rel``: its 99th percentile (a region gone wrong).

Above the precision's tolerance the engine is refused: the node keeps the safe precision (fp32) and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: precision -> (mean_rel, p99_rel) tolerance. fp32 allows TF32 convolutions (TensorRT's default on Ampere+:
#: ~1e-3 relative); fp16 has a 10-bit mantissa (~5e-4 per op, a few 1e-3 through a network); int8 is calibrated
#: to the frames' ranges (a few %).
TOLERANCE = {"fp32": (0.002, 0.01), "fp16": (0.01, 0.05), "int8": (0.03, 0.15)}


@dataclass
class Accuracy:
    precision: str
    mean_rel: float
    p99_rel: float
    max_abs_m: float
    n_frames: int
    source: str

    @property
    def tolerance(self) -> tuple[float, float]:
        return TOLERANCE[self.precision]

    @property
    def ok(self) -> bool:
        mean_tol, p99_tol = self.tolerance
        return bool(self.mean_rel <= mean_tol and self.p99_rel <= p99_tol)

    def describe(self) -> str:
        mean_tol, p99_tol = self.tolerance
        return (
            f"{self.precision} vs ONNX Runtime fp32 on {self.n_frames} {self.source}: mean |depth error| "
            f"{100 * self.mean_rel:.3g} % (tolerance {100 * mean_tol:g} %), p99 {100 * self.p99_rel:.3g} % "
            f"(tolerance {100 * p99_tol:g} %), max {self.max_abs_m:.3g} m"
        )


def compare(precision: str, outputs: list[np.ndarray], references: list[np.ndarray], source: str) -> Accuracy:
    """Depth maps (any shape) of the engine vs the fp32 reference, pixel by pixel where the reference is valid."""
    rel, absd = [], []
    for got, ref in zip(outputs, references, strict=True):
        got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        ok = np.isfinite(ref) & (ref > 0)
        d = np.abs(np.where(np.isfinite(got), got, np.inf) - ref)[ok]
        rel.append(d / ref[ok])
        absd.append(d)
    r = np.concatenate(rel) if rel else np.zeros(1)
    a = np.concatenate(absd) if absd else np.zeros(1)
    return Accuracy(precision, float(r.mean()), float(np.percentile(r, 99)), float(a.max()), len(outputs), source)
