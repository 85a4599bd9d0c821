"""``create_backend``: one call from a model (directory or ONNX) + settings to a loaded-on-demand backend.

``auto`` picks TensorRT when a CUDA GPU is visible and ``tensorrt`` imports, else ONNX Runtime when it imports,
else torch; the choice and its reason are logged and kept in ``backend.reason`` (diagnostics). An NVIDIA GPU
that torch cannot use (a Jetson with pip's CPU-only torch) is still detected (:func:`trt_gpu.detect_gpu`): the
reason says so and ``backend.gpu_unused`` makes the node's diagnostics WARN instead of running the CPU silently. Under ``auto`` a
precision the chosen backend cannot run (fp16/int8 on a CPU) falls back to fp32, with the reason; an explicit
backend that cannot run the requested precision is an error.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from depth_nodes.runtime.base import BACKENDS, Backend, check_precision
from depth_nodes.runtime.errors import BackendUnavailableError, ModelError

log = logging.getLogger(__name__)
ONNX_FILE = "model.onnx"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def cuda_gpu() -> str:
    """Name of the first CUDA GPU torch sees ('' when none or torch is missing)."""
    if not _has("torch"):
        return ""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""


def other_gpu() -> tuple[str, str]:
    """An NVIDIA GPU torch does not see: ``(name, how it was found)`` or ``('', why not)``."""
    from depth_nodes.runtime.trt_gpu import detect_gpu

    return detect_gpu(torch_ok=False)


def unused_gpu_reason() -> str:
    """Why an NVIDIA GPU present here goes unused by torch ('' when there is none or torch can use it)."""
    if cuda_gpu():
        return ""
    name, how = other_gpu()
    if not name:
        return ""
    from depth_nodes.runtime.trt_gpu import torch_cuda_build

    torch_kind = "no torch" if not _has("torch") else ("a CPU-only torch" if not torch_cuda_build() else "a torch that sees no CUDA device")
    return (
        f"NVIDIA GPU {name} found ({how}) but {torch_kind} is installed: the TensorRT and torch-CUDA backends "
        "need a CUDA torch (on a Jetson NVIDIA's torch wheel for JetPack)"
    )


def choose_backend(requested: str = "auto") -> tuple[str, str]:
    """(backend, reason) for ``requested`` in auto|tensorrt|onnxruntime|torch."""
    if requested not in BACKENDS:
        raise ModelError(f"unknown backend {requested!r}; use one of {', '.join(BACKENDS)}")
    if requested != "auto":
        return requested, f"backend {requested!r} configured"
    gpu = cuda_gpu()
    has_trt = _has("tensorrt")
    if gpu and has_trt:
        return "tensorrt", f"auto: CUDA GPU {gpu} and tensorrt importable"
    unused = unused_gpu_reason() if not gpu else ""
    why = ("no CUDA GPU visible" if not gpu else "tensorrt not importable") + (f" ({unused})" if unused else "")
    if _has("onnxruntime"):
        return "onnxruntime", f"auto: {why}; onnxruntime importable"
    if _has("torch"):
        return "torch", f"auto: {why}; onnxruntime not importable; torch importable"
    raise BackendUnavailableError("no inference backend importable: pip install 'depth_nodes[ml]'")


def resolve_onnx(source: Path, cache_dir: Path, height: int, width: int) -> Path:
    """The ONNX file of ``source``: the file itself, ``<dir>/model.onnx``, or an export into ``cache_dir``."""
    if source.is_file() and source.suffix == ".onnx":
        return source
    if not source.is_dir():
        raise ModelError(f"model {source} does not exist (need a model directory or an .onnx file)")
    from depth_nodes import models
    from depth_nodes.runtime.export import export

    cfg = models.read_config(source) if (source / models.CONFIG_FILE).is_file() else None
    # the config this version builds from the directory (family defaults filled in): an ONNX exported for
    # another one (an older version's defaults, an edited config.json) would run a different graph
    want = models.config_hash(models.full_config(cfg["model"], cfg.get("params", {}))) if cfg else ""
    if (source / ONNX_FILE).is_file():
        from depth_nodes.runtime.onnx_io import META_PREFIX, read_onnx

        have = read_onnx(source / ONNX_FILE, check=False).metadata.get(META_PREFIX + "config_hash", "")
        if not want or not have or have == want:
            return source / ONNX_FILE
        log.warning(
            "%s was exported for config %s, but %s with this version's defaults is %s: exporting a fresh "
            "ONNX into %s (run `depth-nodes export %s --out %s` to refresh it)",
            source / ONNX_FILE, have, source / models.CONFIG_FILE, want, cache_dir, source, source / ONNX_FILE,
        )  # fmt: skip
    if cfg is None:  # neither model.onnx nor config.json: read_config raises the error naming config.json
        cfg = models.read_config(source)
    out = cache_dir.expanduser() / f"{cfg['model']}-{want}-{_weights_tag(source)}.onnx"
    if not out.is_file():
        log.warning("no %s in %s: exporting it to %s", ONNX_FILE, source, out)
        export(models.load(source), out, height, width)
    return out


def _weights_tag(source: Path) -> str:
    from depth_nodes.models import WEIGHTS_FILE
    from depth_nodes.runtime.onnx_io import sha256_file

    w = source / WEIGHTS_FILE
    return sha256_file(w)[:12] if w.is_file() else "noweights"


def create_backend(
    model: str | Path,
    backend: str = "auto",
    precision: str = "fp32",
    device: str = "auto",
    engine_cache_dir: str | Path = "~/.cache/depth_nodes/engines",
    resolutions: list[tuple[int, int]] | None = None,
    force_engine_update: bool = False,
    threads: int = 0,
    **trt_options,
) -> Backend:
    """A backend for ``model`` (a model directory or an ``.onnx``); call ``ensure_loaded()`` / ``infer``."""
    check_precision(precision)
    kind, reason = choose_backend(backend)
    source = Path(model).expanduser()
    cache = Path(engine_cache_dir).expanduser()
    res = list(resolutions or [(352, 1216)])
    if device == "auto":
        device = "cuda:0" if kind == "tensorrt" or (kind == "torch" and cuda_gpu()) else "cpu"
    used = precision
    if backend == "auto" and precision != "fp32" and (kind == "onnxruntime" or device == "cpu"):
        used = "fp32"
        reason += f"; {precision} needs TensorRT or torch on CUDA: running fp32"
    if kind == "torch":
        if source.suffix == ".onnx":
            raise ModelError(f"the torch backend needs a model directory (config + safetensors), not {source}")
        from depth_nodes.runtime.torch_backend import TorchBackend

        b: Backend = TorchBackend(source, used, device, threads=threads)
    elif kind == "onnxruntime":
        from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend

        b = OnnxRuntimeBackend(resolve_onnx(source, cache, *res[0]), used, device, threads=threads)
    else:
        from depth_nodes.runtime.trt_backend import TensorRTBackend

        b = TensorRTBackend(
            resolve_onnx(source, cache, *res[0]), used, device, cache, res,
            force_engine_update=force_engine_update, **trt_options,
        )  # fmt: skip
    b.reason = reason
    b.gpu_unused = unused_gpu_reason() if backend == "auto" and device == "cpu" else ""
    if b.gpu_unused:
        log.warning("%s; running %s on the CPU", b.gpu_unused, kind)
    log.info("inference backend %s (%s, %s): %s", kind, device, used, reason)
    return b
