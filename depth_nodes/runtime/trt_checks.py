"""Precision checks of a TensorRT engine (mixed into :class:`TensorRTBackend`): the label of a given engine,
the FP16 overflow guard and the accuracy gate (:mod:`trt_accuracy`); a refused engine is replaced by fp32."""

from __future__ import annotations

import json
import logging

import numpy as np

from depth_nodes.runtime.errors import EngineError
from depth_nodes.runtime.trt_cache import EngineCache, read_trusted

log = logging.getLogger(__name__)


class PrecisionChecks:
    """Needs: trt, engine, given_engine, precision, notes, onnx_path, info, warmup_inputs, engine_profiles,
    input_names, typed_onnx, check_source, on_line, _infer, _open_engine."""

    def _given_precision(self) -> str:
        """The real precision of a ``--engine`` file: its cache key beside it, else its I/O types."""
        kp = EngineCache.key_path(self.given_engine)
        if kp.is_file():
            try:
                prec = json.loads(read_trusted(kp, "engine key"))["precision"]
                self.notes.append(f"engine precision {prec} from {kp.name}")
                return prec
            except (ValueError, KeyError):
                pass
        e = self.engine
        names = [e.get_tensor_name(i) for i in range(e.num_io_tensors)]
        if any(e.get_tensor_dtype(n) == self.trt.DataType.HALF for n in names):
            self.notes.append("engine precision fp16 from its fp16 I/O tensors")
            return "fp16"
        self.notes.append(f"precision of {self.given_engine.name} unknown (no {kp.name} beside it): checked as "
                          f"{self.precision}")  # fmt: skip
        return self.precision

    def _default_warmup(self) -> list[dict[str, np.ndarray]]:
        """Two street-like frames at the first profile's size, normalised as the ONNX metadata says."""
        from depth_nodes.runtime.frames import street_frames
        from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy

        _n, _lo, opt, _hi = self.engine_profiles[0].shapes[0]
        h, w = int(opt[2]), int(opt[3])
        norm = Normalisation.from_contract(self.info.json_meta("inputs"))
        feeds = [to_inputs_numpy(i, s, norm, self.info.stride, size=(h, w)) for i, s in street_frames(2, h, w)]
        return [{n: f[n] for n in self.input_names} for f in feeds]

    def _fp16_guard(self) -> None:
        if self.precision == "fp32":
            return
        feeds = self.warmup_inputs or []
        for i, feed in enumerate(feeds):
            out = self._infer(feed)
            bad = {n: int((~np.isfinite(np.asarray(v))).sum()) for n, v in out.items()}
            if any(bad.values()):
                reason = (
                    f"{self.precision} engine gave non-finite outputs on warm-up frame {i} ({bad}): "
                    "rebuilt in fp32"
                )
                log.warning("%s", reason)
                self.on_line(reason)
                self.notes.append(reason)
                self._fall_back_to_fp32()
                return

    def _fall_back_to_fp32(self) -> None:
        if self.typed_onnx:
            raise EngineError(f"{self.onnx_path.name} is already {self.precision} (typed): no fp32 to fall back to; "
                              "export the model in fp32")  # fmt: skip
        self.precision, self.given_engine = "fp32", None  # fp32 from the ONNX, into the cache
        self._open_engine("fp32", False)

    def _accuracy_gate(self) -> None:
        """Refuse a reduced-precision engine whose depth is off ONNX Runtime fp32 beyond the tolerance."""
        from depth_nodes.runtime import trt_accuracy
        from depth_nodes.runtime.factory import _has

        if self.precision == "fp32" or not self.warmup_inputs:
            return
        if self.typed_onnx:  # ONNX Runtime would run the same reduced-precision graph: no fp32 reference
            self.notes.append(f"accuracy gate skipped: {self.onnx_path.name} is already {self.precision} (no fp32 "
                              "ONNX to compare with)")  # fmt: skip
            return
        if not _has("onnxruntime"):
            self.notes.append("accuracy gate skipped: onnxruntime not importable (no fp32 reference)")
            return
        from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend

        ref = OnnxRuntimeBackend(self.onnx_path)
        outs = [np.asarray(self._infer(f)["depth"]) for f in self.warmup_inputs]
        refs = [ref.infer(f)["depth"] for f in self.warmup_inputs]
        ref.close()
        acc = trt_accuracy.compare(self.precision, outs, refs, self.check_source or "frames")
        self.accuracy = acc
        if acc.ok:
            return
        reason = f"{self.precision} engine refused: {acc.describe()}; running fp32 instead"
        log.warning("%s", reason)
        self.on_line(reason)
        self.notes.append(reason)
        self._fall_back_to_fp32()
