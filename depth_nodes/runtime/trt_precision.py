"""Reduced precision for TensorRT: ONNX conversion (11.x, or typed ONNX on 10.x) and the 10.x INT8 calibrator.

- FP16 ONNX: NVIDIA ModelOpt AutoCast (``modelopt.onnx.autocast.convert_to_mixed_precision``, keeps fp32 I/O and
  fp32 where fp16 would overflow -- judged on the ``--calib-dir`` frames when given, ``calibration_data`` = an
  ``.npz`` of the input tensors), else ``onnxconverter_common.float16.convert_float_to_float16``. The tool and
  its version are part of the engine cache key (:func:`converter_id`): the two make different graphs.
- INT8 ONNX: ModelOpt PTQ (``modelopt.onnx.quantization.quantize``) inserting Q/DQ nodes, calibrated on real
  frames (entropy), so TensorRT 11.x has explicit scales.
- INT8 on 10.x: an ``IInt8EntropyCalibrator2`` whose batches are torch CUDA tensors (no pycuda).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from pathlib import Path

import numpy as np

from depth_nodes.runtime.errors import BackendUnavailableError, EngineError

log = logging.getLogger(__name__)


def is_typed_onnx(onnx_path: Path) -> bool:
    """True when the ONNX already carries reduced precision (fp16 tensors or Q/DQ nodes)."""
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in m.graph.node):
        return True
    return any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)


def onnx_precision(onnx_path: Path) -> str:
    """What an ONNX computes in: ``int8`` (Q/DQ nodes), ``fp16`` (fp16 initializers), else ``fp32``."""
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in m.graph.node):
        return "int8"
    return "fp16" if any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer) else "fp32"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def converter_id(precision: str) -> str:
    """The tool (and version) :func:`convert_fp16` / :func:`quantize_int8` would use now ('' = none installed)."""
    if importlib.util.find_spec("modelopt") is not None:
        return f"modelopt {_version('nvidia-modelopt')} ({'autocast' if precision == 'fp16' else 'ptq int8'})"
    if precision == "fp16" and importlib.util.find_spec("onnxconverter_common") is not None:
        return f"onnxconverter-common {_version('onnxconverter-common')} (float16)"
    return ""


def convert_fp16(onnx_path: Path, out_path: Path, calib: dict[str, np.ndarray] | None = None) -> str:
    """Write an fp16 (mixed) copy of ``onnx_path`` with fp32 inputs/outputs; returns the tool used.

    ``calib`` (name -> N x C x H x W): real frames for AutoCast to judge which nodes stay fp32."""
    import onnx

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision

        data = None
        if calib:
            data = out_path.with_suffix(".calib.npz")
            np.savez(data, **calib)
        model = convert_to_mixed_precision(
            onnx_path=str(onnx_path), low_precision_type="fp16", keep_io_types=True,
            calibration_data=str(data) if data else None,
        )  # fmt: skip
        tool = "modelopt.onnx.autocast" + (" (calibrated on the given frames)" if calib else "")
    except ImportError:
        try:
            from onnxconverter_common import float16
        except ImportError:
            raise BackendUnavailableError(
                "fp16 on TensorRT 11.x needs the ONNX converted first: pip install nvidia-modelopt[onnx] "
                "(or onnxconverter-common)"
            ) from None
        model = float16.convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
        tool = "onnxconverter_common.float16"
    onnx.save(model, str(out_path))
    return tool


def quantize_int8(onnx_path: Path, out_path: Path, calib: dict[str, np.ndarray]) -> str:
    """Write a Q/DQ INT8 copy of ``onnx_path`` calibrated on ``calib`` (name -> N x C x H x W float32)."""
    try:
        from modelopt.onnx.quantization import quantize
    except ImportError:
        raise BackendUnavailableError(
            "int8 on TensorRT 11.x needs Q/DQ nodes in the ONNX: pip install nvidia-modelopt[onnx]"
        ) from None
    quantize(
        onnx_path=str(onnx_path),
        quantize_mode="int8",
        calibration_data=calib,
        calibration_method="entropy",
        calibration_eps=["cpu"],
        output_path=str(out_path),
    )
    if not out_path.is_file():
        raise EngineError(f"modelopt quantize wrote no {out_path}")
    return "modelopt.onnx.quantization.quantize (int8, entropy)"


def make_entropy_calibrator(trt, batches: list[dict[str, np.ndarray]], device: str, cache_path: Path):
    """An ``IInt8EntropyCalibrator2`` for TensorRT 10.x feeding ``batches`` (one dict of inputs per batch)."""
    import torch

    base = trt.IInt8EntropyCalibrator2

    class _Calibrator(base):
        def __init__(self) -> None:
            base.__init__(self)
            self._batches = list(batches)
            self._i = 0
            self._live: list = []

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if self._i >= len(self._batches):
                return None
            feed = self._batches[self._i]
            self._i += 1
            self._live = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(device) for n in names]
            return [int(t.data_ptr()) for t in self._live]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            cache_path.write_bytes(bytes(memoryview(cache)))

    return _Calibrator()
