"""Running an ONNX by its contract (:mod:`depth_nodes.runtime.contract`): camera frame -> the declared inputs ->
the runtime backend (ONNX Runtime / TensorRT via :func:`depth_nodes.runtime.create_backend`) -> metric depth at the
camera's resolution, NaN where there is no estimate.

``completer: learned`` with ``model_dir`` holding ``model.onnx`` + ``model.json`` (or the ``.onnx`` /
``model.json`` path itself) builds a :class:`ContractEstimator` instead of the project's own I/O contract.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np

from depth_nodes.completion.base import Completion
from depth_nodes.errors import EmptyInputError
from depth_nodes.runtime.base import Backend, to_numpy
from depth_nodes.runtime.contract import Contract, InputSpec, load_contract
from depth_nodes.runtime.errors import ModelError
from depth_nodes.runtime.preprocess import padded_size

log = logging.getLogger(__name__)
DEFAULT_MAX_DEPTH_M = 120.0


class ContractModel:
    """A loaded backend + its contract: :meth:`feeds` builds the inputs, :meth:`predict` gives metric depth."""

    def __init__(self, contract: Contract, backend: Backend) -> None:
        self.contract = contract
        self.backend = backend
        self.name = f"onnx_contract:{contract.name}"

    # ------------------------------------------------------------------ geometry
    def network_size(self, h: int, w: int) -> tuple[int, int]:
        c = self.contract
        if c.fixed is None:
            return padded_size(h, w, c.stride)
        if c.fit == "pad" and (h > c.fixed[0] or w > c.fixed[1]):
            raise ModelError(f"{self.name}: camera {h}x{w} is larger than the fixed network input "
                             f"{c.fixed[0]}x{c.fixed[1]} (size.fit pad); use fit resize or re-export")  # fmt: skip
        return c.fixed

    def _resized(self) -> bool:
        return self.contract.fixed is not None and self.contract.fit == "resize"

    # ------------------------------------------------------------------ inputs
    def feeds(self, rgb: np.ndarray | None, sparse_m: np.ndarray | None, K: np.ndarray | None) -> dict[str, np.ndarray]:
        """The declared graph inputs (float32) for a frame (``rgb`` H x W x 3 uint8, ``sparse_m`` H x W, ``K``)."""
        c = self.contract
        h, w = (rgb.shape[:2] if rgb is not None else sparse_m.shape[:2])
        ph, pw = self.network_size(h, w)
        ch, cw = (ph, pw) if self._resized() else (h, w)  # the camera content inside the network input
        sy, sx = ch / h, cw / w
        out: dict[str, np.ndarray] = {}
        for name, spec in c.inputs.items():
            if spec.source == "image":
                if rgb is None:
                    raise EmptyInputError(f"{self.name}: input {name!r} needs the camera image")
                arr = self._image(rgb, spec, (ch, cw), (ph, pw))
            elif spec.source == "depth":
                if sparse_m is None:
                    raise EmptyInputError(f"{self.name}: input {name!r} needs the LiDAR depth")
                arr = self._depth(sparse_m, spec, (ch, cw), (ph, pw))
            elif spec.source == "position":
                v = 2.0 * np.arange(ph, dtype=np.float32) / max(ch - 1, 1) - 1.0
                u = 2.0 * np.arange(pw, dtype=np.float32) / max(cw - 1, 1) - 1.0
                arr = np.stack(np.broadcast_arrays(u[None, :], v[:, None]))[None].astype(np.float32)
            else:  # intrinsics
                if K is None:
                    raise EmptyInputError(f"{self.name}: input {name!r} needs the camera intrinsics")
                arr = _scaled_K(np.asarray(K, np.float64), sx, sy).astype(np.float32)
                arr = arr.reshape((1, 3, 3) if len(c.graph_inputs.get(name, (3, 3))) == 3 else (3, 3))
                out[name] = arr
                continue
            out[name] = np.ascontiguousarray(arr.transpose(0, 2, 3, 1) if spec.layout == "NHWC" else arr)
        return out

    @staticmethod
    def _image(rgb: np.ndarray, spec: InputSpec, content: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        img = rgb[..., :3]
        if img.shape[:2] != content:
            shrink = content[0] < img.shape[0]
            img = cv2.resize(img, content[::-1], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if spec.bgr:
            img = img[..., ::-1]
        x = np.zeros((1, 3, *size), np.float32)
        x[0, :, : content[0], : content[1]] = img.transpose(2, 0, 1)
        if size != content:  # replicate the border: padding looks like more image, not a black bar
            x[0, :, content[0] :, : content[1]] = x[0, :, content[0] - 1 : content[0], : content[1]]
            x[0, :, :, content[1] :] = x[0, :, :, content[1] - 1 : content[1]]
        if spec.units == "0..1":
            x *= np.float32(1.0 / 255.0)
        mean = np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1)
        return (x - mean) / std

    @staticmethod
    def _depth(sparse_m: np.ndarray, spec: InputSpec, content: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        d = np.nan_to_num(np.asarray(sparse_m, np.float32), nan=0.0, posinf=0.0)
        d[d < 0] = 0.0
        if d.shape != content:  # re-scatter the returns at the network's scale; the nearest return wins a pixel
            ys, xs = np.nonzero(d > 0)
            vals = d[ys, xs]
            yy = np.minimum((ys + 0.5) * content[0] / d.shape[0], content[0] - 1).astype(np.int64)
            xx = np.minimum((xs + 0.5) * content[1] / d.shape[1], content[1] - 1).astype(np.int64)
            order = np.argsort(-vals)  # far first: nearer returns overwrite
            d = np.zeros(content, np.float32)
            d[yy[order], xx[order]] = vals[order]
        x = np.zeros((1, 1, *size), np.float32)
        x[0, 0, : content[0], : content[1]] = d
        if spec.units == "inverse_depth":
            np.divide(1.0, x, out=x, where=x > 0)
        return x

    # ------------------------------------------------------------------ outputs
    def _output(self, outs: dict, name: str, hw: tuple[int, int], content: tuple[int, int]) -> np.ndarray:
        try:
            a = to_numpy(outs[name]).astype(np.float32)
        except KeyError:
            raise ModelError(f"{self.name}: the backend returned no output {name!r} ({sorted(outs)})") from None
        a = a.reshape([s for s in a.shape if s != 1]) if a.ndim > 2 else a
        if a.ndim != 2:
            raise ModelError(f"{self.name}: output {name!r} has shape {to_numpy(outs[name]).shape}; expected one map")
        if self._resized():
            return cv2.resize(a, hw[::-1], interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(a[: content[0], : content[1]])

    def raw(self, rgb, sparse_m, K) -> tuple[np.ndarray, np.ndarray | None]:
        """(the depth output as the model gives it, confidence or None) at the camera's size."""
        h, w = (rgb.shape[:2] if rgb is not None else sparse_m.shape[:2])
        outs = self.backend.infer(self.feeds(rgb, sparse_m, K))
        pred = self._output(outs, self.contract.depth_output, (h, w), (h, w))
        conf = None
        if self.contract.confidence_output:
            conf = np.clip(self._output(outs, self.contract.confidence_output, (h, w), (h, w)), 0.0, 1.0)
        return pred, conf

    def predict(self, rgb, sparse_m, K, max_depth_m: float = DEFAULT_MAX_DEPTH_M) -> Completion:
        """Metric depth (m; NaN = none, beyond ``max_depth_m`` or not positive) + confidence at the camera's size."""
        from depth_nodes.core.scale_fit import INVERSE, ScaleFitError, apply_scale, fit_scale

        pred, conf = self.raw(rgb, sparse_m, K)
        kind = self.contract.depth_kind
        with np.errstate(divide="ignore", invalid="ignore"):
            if kind == "metric":
                depth = pred.copy()
            elif kind == "inverse":
                depth = np.where(pred > 0, 1.0 / pred, np.nan).astype(np.float32)
            else:  # relative: affine-invariant inverse depth, fitted to this frame's LiDAR
                if sparse_m is None:
                    raise EmptyInputError(f"{self.name}: a relative output needs the frame's LiDAR for its scale")
                try:
                    fit = fit_scale(pred, np.nan_to_num(sparse_m), INVERSE, max_depth_m=max_depth_m)
                except ScaleFitError as exc:
                    raise EmptyInputError(f"{self.name}: no scale fit on this frame: {exc}") from None
                depth = apply_scale(pred, INVERSE, fit.scale, fit.shift, max_depth_m)
                if conf is None:
                    conf = np.full(depth.shape, 1.0 / (1.0 + fit.residual / 0.15), np.float32)
        bad = ~np.isfinite(depth) | (depth <= 0) | (depth > max_depth_m)
        depth[bad] = np.nan
        conf = np.ones_like(depth) if conf is None else conf.astype(np.float32)  # none declared: 1 where depth
        conf[bad] = 0.0
        return Completion(depth.astype(np.float32), conf)


def _scaled_K(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K of an image resized by (sx, sy) (pixel centres kept: c' = (c + 0.5) s - 0.5)."""
    if sx == 1.0 and sy == 1.0:
        return K.copy()
    out = K.copy()
    out[0, 0], out[0, 2] = K[0, 0] * sx, (K[0, 2] + 0.5) * sx - 0.5
    out[1, 1], out[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
    return out


class ContractEstimator:
    """A :class:`ContractModel` as a pipeline estimator (``completer: learned``; see the module docstring)."""

    def __init__(self, model: ContractModel) -> None:
        self.model = model
        self.backend = model.backend
        self.name = f"learned:{model.name}"
        c = model.contract
        self.needs_image = c.needs("image")
        self.needs_lidar = c.needs("depth") or c.depth_kind == "relative"

    def predict(self, rgb, sparse_m, K=None) -> Completion:
        return self.model.predict(rgb, sparse_m, K)

    def with_backend(self, backend: Backend) -> ContractEstimator:
        """The same contract on another backend (the guard's ONNX Runtime stand-in while an engine rebuilds)."""
        return ContractEstimator(ContractModel(self.model.contract, backend))

    def estimate(self, inputs) -> Completion:
        sparse = inputs.sparse.depth if inputs.sparse is not None else None
        if self.needs_lidar and sparse is None:
            raise EmptyInputError(f"no LiDAR depth for {self.name}")
        if self.needs_image and inputs.rgb is None:
            raise EmptyInputError(f"{self.name} needs the camera image")
        return self.model.predict(inputs.rgb, sparse, inputs.camera.K, inputs.max_depth_m or DEFAULT_MAX_DEPTH_M)


def build_contract_estimator(path, opts, on_line: Callable[[str], None] | None = None, **extra) -> ContractEstimator:
    """Load ``path``'s contract, create its backend (``opts``: LearnedOptions), warm it up on a street frame."""
    from depth_nodes.runtime.factory import create_backend
    from depth_nodes.runtime.frames import street_frame

    contract = load_contract(path)
    h, w = contract.fixed or opts.resolutions[0]  # the warm-up frame: a fixed-size network's own size
    if on_line is not None:
        extra["on_line"] = on_line
    backend = create_backend(contract.onnx_path, opts.backend, opts.precision, opts.device, opts.engine_cache_dir,
                             [_network_hw(contract, h, w)], opts.force_engine_update, **extra)  # fmt: skip
    backend.ensure_loaded()
    backend.model_name = contract.name  # diagnostics: learned_model names the contract's model
    model = ContractModel(contract, backend)
    img, sp = street_frame(h, w, seed=7)
    f = 721.5 * w / 1242.0
    K = np.array([[f, 0, w / 2], [0, f, h * 0.45], [0, 0, 1]])
    try:
        out = model.predict(img, sp, K)
    except EmptyInputError:  # a relative model that cannot fit this synthetic frame still ran
        return ContractEstimator(model)
    if not np.isfinite(out.depth).any():
        raise ModelError(f"{model.name} gives no finite depth on a warm-up frame (check model.json's outputs kind)")
    log.info("ONNX contract model %s ready: %s", model.name, backend.describe())
    return ContractEstimator(model)


def _network_hw(c: Contract, h: int, w: int) -> tuple[int, int]:
    return c.fixed if c.fixed is not None else padded_size(h, w, c.stride)
