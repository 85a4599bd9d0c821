"""What ``depth-nodes build-engine`` and ``depth-nodes check-engine`` do: TensorRT engines from ONNX, for GPU users.

build-engine builds (or finds in the cache) the engine of an ONNX for a precision and resolutions; an fp16 /
int8 engine must pass the accuracy gate (:mod:`trt_accuracy`) on the ``--calib-dir`` frames (else the package's
street frames), or fp32 is built instead and the command says why (exit 1). check-engine compares each
precision's engine with ONNX Runtime fp32 on ``--frames`` / ``--calib-dir`` frames against the precision's
stated tolerance and prints FPS; any precision over its tolerance (or refused) fails it (exit 1). Without a
CUDA GPU + tensorrt both say so and exit 2.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _res(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx", help="ONNX file (from depth-nodes export)")
    p.add_argument("--resolution", "-r", action="append", type=_res, metavar="HxW",
                   help="profile resolution, repeatable (default 352x1216)")  # fmt: skip
    p.add_argument("--engine-cache-dir", default="~/.cache/depth_nodes/engines", help="engine cache directory")
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT workspace pool limit (MiB)")
    p.add_argument("--force-engine-update", action="store_true", help="rebuild even when a cached engine matches")
    p.add_argument("--calib-dir", help="directory of .npz frames for INT8 calibration (and check frames)")


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")


def add_check_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--engine", help="use this engine file instead of the cache")
    p.add_argument("--precision", action="append", choices=("fp32", "fp16", "int8"),
                   help="precision(s) to check (default fp32 and fp16)")  # fmt: skip
    p.add_argument("--frames", help="directory of saved .npz frames (default: procedural street frames)")
    p.add_argument("--iterations", type=int, default=50, help="timed inferences per precision")


def _no_gpu() -> str:
    from depth_nodes.runtime.factory import _has, cuda_gpu

    if not cuda_gpu():
        return "no CUDA GPU is visible (TensorRT engines are built and run on NVIDIA GPUs only)"
    if not _has("tensorrt"):
        return "tensorrt is not importable: JetPack's TensorRT on a Jetson, else pip install 'depth_nodes[trt]'"
    return ""


def _feeds(info, frames, res):
    from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy

    norm = Normalisation.from_contract(info.json_meta("inputs"))
    return [to_inputs_numpy(i, s, norm, info.stride, size=res) for i, s in frames]


def _frames(args, res, n=4):
    from depth_nodes.runtime.frames import load_frames, street_frames

    d = getattr(args, "frames", None) or args.calib_dir
    return load_frames(d, limit=n) if d else street_frames(n, *res)


def _source(args) -> str:
    d = getattr(args, "frames", None) or args.calib_dir
    return f"frames of {d}" if d else "street frames (procedural)"


def _backend(args, precision, info, res, frames, engine=None):
    from depth_nodes.runtime.trt_backend import TensorRTBackend

    feeds = _feeds(info, frames, res)
    calib = None
    if precision == "int8" and not args.calib_dir:
        raise SystemExit("int8 needs --calib-dir FRAMES (a directory of real frames, .npz)")
    if args.calib_dir:  # int8 calibration, and AutoCast's fp16 judgement on the strongly typed path
        from depth_nodes.runtime.frames import load_frames

        calib = _feeds(info, load_frames(args.calib_dir, limit=64), res)
    return TensorRTBackend(
        args.onnx, precision, "cuda:0", args.engine_cache_dir, args.resolution or [(352, 1216)],
        args.workspace_mb, args.force_engine_update, engine, calib, feeds, on_line=print,
        check_source=_source(args),
    )  # fmt: skip


def _model_on_gpu(args: argparse.Namespace, cannot: str):
    """``(ONNX info, first resolution)``, or None after printing ``cannot`` and why when no GPU is usable."""
    from depth_nodes.runtime.onnx_io import read_onnx

    why = _no_gpu()
    if why:
        print(f"{cannot} here: {why}")
        return None
    return read_onnx(args.onnx), (args.resolution or [(352, 1216)])[0]


def run_build(args: argparse.Namespace) -> int:
    model = _model_on_gpu(args, "build-engine: cannot build")
    if model is None:
        return 2
    info, res = model
    b = _backend(args, args.precision, info, res, _frames(args, res, 2))
    b.ensure_loaded()
    for k, v in b.describe().items():
        print(f"  {k}: {v}")
    if b.precision != args.precision:
        print(f"build-engine: the {args.precision} engine was refused: {'; '.join(b.notes)}")
        return 1
    return 0


def run_check(args: argparse.Namespace) -> int:
    from depth_nodes.runtime import trt_accuracy
    from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend

    model = _model_on_gpu(args, "check-engine: cannot check")
    if model is None:
        return 2
    info, res = model
    frames = _frames(args, res)
    feeds = _feeds(info, frames, res)
    ref = OnnxRuntimeBackend(args.onnx)
    ref_out = [ref.infer(f) for f in feeds]
    print(f"{args.onnx}: {len(feeds)} {_source(args)} at {res[0]}x{res[1]}, reference ONNX Runtime CPU fp32")
    failed = []
    for prec in args.precision or (["fp32"] if args.engine else ["fp32", "fp16"]):
        b = _backend(args, prec, info, res, frames, args.engine)
        b.ensure_loaded()
        label = b.precision  # a given engine: its real precision (key file / I/O types), not the option
        if not args.engine and label != prec:
            failed.append(f"{prec}: engine refused ({'; '.join(b.notes)})")
        outs = [b.infer(f) for f in feeds]
        acc = trt_accuracy.compare(label, [o["depth"] for o in outs], [r["depth"] for r in ref_out], _source(args))
        fps = _fps(b, feeds[0], args.iterations)
        print(f"[{prec} -> engine {label}] {b.build_path or b.cache_event}; {fps:.1f} FPS")
        print(f"   {acc.describe()}: {'PASS' if acc.ok else 'FAIL'}")
        for n in b.output_names:
            d = np.concatenate([np.abs(o[n] - r[n]).ravel() for o, r in zip(outs, ref_out, strict=True)])
            print(f"   {n:<12} max|diff| {d.max():.3g}  mean|diff| {d.mean():.3g}")
        if not acc.ok:
            failed.append(acc.describe())
    for f in failed:
        print(f"check-engine FAILED: {f}")
    return 1 if failed else 0


def _fps(backend, feed, iterations: int) -> float:
    import torch

    t = {n: torch.from_numpy(v).cuda() for n, v in feed.items()}
    backend.warmup(t, 3)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iterations):
        backend.infer(t)
    torch.cuda.synchronize()
    return iterations / (time.perf_counter() - t0)
