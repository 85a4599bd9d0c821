"""One command for a lent GPU machine: CUDA-torch latency and parity of every shipped / imported model.

``bash scripts/gpu_check.sh [OUT_DIR]`` (no internet there, CUDA torch present, no TensorRT): for every model
directory in the package (``depth_nodes/**/weights/<name>/`` with config.json + model.safetensors: the shipped
checkpoints and any imported one saved there), every ``--model DIR`` (an imported checkpoint, e.g. from
``depth-nodes model import penet``), and every published family (ENet, PENet) with seeded weights when no
imported directory of it is given (the official weights are ~0.5 GB, beyond the machine's 64 MiB carry; latency
depends on the architecture, not on the weight values), at 352x1216 and 384x1248 (H x W):

- torch CUDA fp32 and fp16 (``torch.autocast``, as the torch backend runs fp16) latency, warm: ``--warmup``
  calls, then ``--iterations`` timed calls with ``torch.cuda.synchronize`` around each; p50 / p99 ms;
- parity against the CPU fp32 output of the same model on the same street frame: max |depth diff| (m) and the
  mean relative difference (at the timed size; at 128x448 for nets over 20 M parameters, ``parity_hw``);

written as ``gpu_check.json`` + ``gpu_check.md`` (a markdown table) in OUT_DIR. A time budget (``--budget-s``,
default 240 s) keeps the whole run under 5 minutes: rows not reached are listed as skipped. Without CUDA (or
with ``--reduced``) it runs a reduced CPU mode -- 64x192, fp32 only, a few iterations, no seeded published
families (130 M parameters: ~23 s a call on a loaded 2-core CPU) unless ``--published yes`` -- so the script is
tested on every CI run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

FULL_SIZES = ((352, 1216), (384, 1248))
REDUCED_SIZES = ((64, 192),)
FAMILY_MODULES = ("depth_nodes.mono.net",)
#: nets above this many parameters (the published ENet/PENet: 130 M) are compared with the CPU at PARITY_SMALL_HW
#: (a CPU run of them at 384x1248 takes minutes, beyond the 5-minute budget); the row's ``parity_hw`` says which
PARITY_FULL_MAX_PARAMS = 20_000_000
PARITY_SMALL_HW = (128, 448)  # families registered outside depth_nodes.models (mono_unet)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="output directory (JSON + markdown)")
    p.add_argument("--model", action="append", default=[], help="extra model directory (repeatable)")
    p.add_argument("--iterations", type=int, default=30, help="timed calls per row (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls before timing (default 5)")
    p.add_argument("--budget-s", type=float, default=240.0, help="stop starting rows after this (default 240 s)")
    p.add_argument("--reduced", action="store_true", help="CPU smoke mode (automatic without CUDA)")
    p.add_argument("--published", choices=("auto", "yes", "no"), default="auto",
                   help="seeded ENet/PENet rows (auto: on CUDA only)")  # fmt: skip


def model_dirs(extra: list[str]) -> list[Path]:
    from depth_nodes.models.registry import CONFIG_FILE, WEIGHTS_FILE

    root = Path(__file__).resolve().parents[1]
    found = [c.parent for c in sorted(root.glob("**/weights/*/" + CONFIG_FILE)) if (c.parent / WEIGHTS_FILE).is_file()]
    return list(dict.fromkeys([*found, *(Path(e).expanduser().resolve() for e in extra)]))


def _register_families() -> None:
    import importlib

    for mod in FAMILY_MODULES:
        try:
            importlib.import_module(mod)
        except ImportError:
            pass


def load_model(d: Path):
    from depth_nodes import models

    _register_families()
    return models.load(d).eval().float()


def candidates(extra: list[str], published: bool) -> list[tuple[str, object]]:
    """``(weights label, model dir or published family name)``: package dirs, --model dirs, seeded published."""
    from depth_nodes import models

    dirs = model_dirs(extra)
    given = {Path(e).expanduser().resolve() for e in extra}
    out: list[tuple[str, object]] = [("imported" if d in given else "shipped", d) for d in dirs]
    if published:
        have = set()
        for d in dirs:
            try:
                have.add(models.read_config(d)["model"])
            except Exception:  # noqa: BLE001 - reported when loaded
                pass
        out += [("seeded (architecture timing)", name) for name in getattr(models, "PUBLISHED", {}) if name not in have]
    return out


def _build(source):
    if isinstance(source, Path):
        return load_model(source)
    import torch

    from depth_nodes import models

    torch.manual_seed(0)
    return models.create(source).eval().float()


def make_inputs(model, h: int, w: int) -> dict[str, np.ndarray]:
    """Named inputs of a street frame for ``model`` (fusion: image + sparse inverse depth; mono: + ray elevation)."""
    from depth_nodes.runtime.frames import street_frame
    from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy

    img, sp = street_frame(h, w, seed=5)
    norm = Normalisation.from_contract(model.depth_nodes_config.get("inputs"))
    feed = to_inputs_numpy(img, sp, norm, int(getattr(model, "stride", 1)))
    fy, cy = 721.5 * w / 1242.0, 0.46 * h  # the street frame's camera
    v = (np.arange(h, dtype=np.float32) + 0.5 - cy) / fy
    feed["ray_elevation"] = np.broadcast_to(v[:, None], (h, w))[None, None].astype(np.float32).copy()
    return {n: feed.get(n, np.zeros((1, 1, h, w), np.float32)) for n in model.input_names}


def _depth(model, outs):
    outs = (outs,) if not isinstance(outs, tuple | list) else outs
    return dict(zip(model.output_names, outs, strict=False)).get("depth", outs[0])


def run_row(model, feed: dict, device: str, precision: str, warmup: int, iterations: int) -> tuple[dict, np.ndarray]:
    import torch

    dev = torch.device(device)
    m = model.to(dev)
    x = [torch.from_numpy(feed[n]).to(dev) for n in model.input_names]
    cuda = dev.type == "cuda"
    ctx = torch.autocast("cuda", dtype=torch.float16) if precision == "fp16" else torch.autocast(dev.type, enabled=False)

    def call():
        with torch.inference_mode(), ctx:
            return _depth(m, m(*x))

    for _ in range(max(1, warmup)):
        call()
    ms = []
    for _ in range(max(1, iterations)):
        if cuda:
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        out = call()
        if cuda:
            torch.cuda.synchronize(dev)
        ms.append((time.perf_counter() - t0) * 1e3)
    a = np.asarray(ms)
    stats = {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": len(ms)}
    return stats, out.float().cpu().numpy()


def parity(got: np.ndarray, ref: np.ndarray) -> dict:
    ok = np.isfinite(ref) & (ref > 0)
    d = np.abs(got.astype(np.float64) - ref)[ok]
    if not d.size:
        return {"max_abs_m": float("nan"), "mean_rel": float("nan")}
    return {"max_abs_m": float(d.max()), "mean_rel": float((d / ref[ok]).mean()), "finite": bool(np.isfinite(got).all())}


def run(args: argparse.Namespace) -> int:
    import torch

    t_start = time.monotonic()
    cuda = torch.cuda.is_available() and not args.reduced
    device = "cuda:0" if cuda else "cpu"
    sizes = FULL_SIZES if cuda else REDUCED_SIZES
    precisions = ("fp32", "fp16") if cuda else ("fp32",)
    iterations, warmup = (args.iterations, args.warmup) if cuda else (min(args.iterations, 3), 1)
    result = {
        "mode": "cuda" if cuda else "reduced (CPU: no CUDA or --reduced; fp16 needs CUDA)",
        "device": torch.cuda.get_device_name(0) if cuda else (platform.processor() or platform.machine()),
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "sizes_hw": [list(s) for s in sizes], "iterations": iterations, "warmup": warmup, "rows": [], "skipped": [],
        "errors": [],
    }  # fmt: skip
    published = args.published == "yes" or (args.published == "auto" and cuda)
    for weights, d in candidates(args.model, published):
        try:
            model = _build(d)
        except Exception as exc:  # noqa: BLE001 - one unloadable model must not stop the others
            result["errors"].append({"model_dir": str(d), "error": f"{type(exc).__name__}: {exc}"})
            continue
        _model_rows(model, d, weights, sizes, precisions, device, warmup, iterations, args, t_start, result)
        model.to("cpu")
        _write(args.out, result, t_start)  # after every model: a run cut short still leaves its rows
    _write(args.out, result, t_start)
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'} ({result['wall_s']} s)")
    return 1 if result["errors"] or not result["rows"] else 0


def _model_rows(model, d, weights, sizes, precisions, device, warmup, iterations, args, t_start, result) -> None:
    name = model.depth_nodes_config["model"]
    n_params = int(sum(p.numel() for p in model.parameters()))
    stride = int(getattr(model, "stride", 1))
    # parity against the CPU at the timed size, except for big nets whose CPU run alone would take minutes
    big = n_params > PARITY_FULL_MAX_PARAMS
    refs: dict = {}
    for h, w in sizes:
        ph, pw = -(-h // stride) * stride, -(-w // stride) * stride
        feed = make_inputs(model, ph, pw)
        qh, qw = (min(ph, -(-PARITY_SMALL_HW[0] // stride) * stride), min(pw, -(-PARITY_SMALL_HW[1] // stride) * stride)) if big else (ph, pw)
        pfeed = feed if (qh, qw) == (ph, pw) else make_inputs(model, qh, qw)
        for prec in precisions:
            row = {"model": name, "model_dir": str(d), "weights": weights, "parameters": n_params,
                   "size_hw": f"{h}x{w}", "padded_hw": f"{ph}x{pw}", "parity_hw": f"{qh}x{qw}", "device": device,
                   "precision": prec}  # fmt: skip
            if time.monotonic() - t_start > args.budget_s:
                result["skipped"].append({**row, "why": f"time budget {args.budget_s:g} s spent"})
                continue
            try:
                if (qh, qw) not in refs:  # the CPU fp32 reference of this model and size
                    refs[(qh, qw)] = run_row(model, pfeed, "cpu", "fp32", 0, 1)[1]
                stats, out = run_row(model, feed, device, prec, warmup, iterations)
                if (qh, qw) != (ph, pw):
                    out = run_row(model, pfeed, device, prec, 0, 1)[1]
            except Exception as exc:  # noqa: BLE001
                result["errors"].append({**row, "error": f"{type(exc).__name__}: {exc}"})
                continue
            row.update(stats)
            row["parity_vs_cpu_fp32"] = parity(out, refs[(qh, qw)])
            result["rows"].append(row)
            print(f"{name:<12} {h}x{w} {device} {prec}: p50 {stats['p50_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, "
                  f"max |diff| vs CPU {row['parity_vs_cpu_fp32']['max_abs_m']:.3g} m at {qh}x{qw}", flush=True)  # fmt: skip


def _write(out: Path, result: dict, t_start: float) -> None:
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(result))


def markdown(result: dict) -> str:
    lines = [
        f"Device: {result['device']} ({result['mode']}); torch {result['torch']}, CUDA {result['cuda']}; "
        f"{result['warmup']} warm-up + {result['iterations']} timed calls per row; parity = the same model's CPU "
        f"fp32 output on the same street frame (at the timed size; 128x448 for nets over 20 M parameters). "
        f"Wall time {result['wall_s']} s.",
        "",
        "| model | weights | params | H x W (padded) | device | precision | p50 ms | p99 ms | max abs diff vs CPU m | mean rel diff |",
        "|---|---|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        p = r["parity_vs_cpu_fp32"]
        lines.append(f"| {r['model']} | {r['weights']} | {r['parameters']:,} | {r['size_hw']} ({r['padded_hw']}) | {r['device']} | "
                     f"{r['precision']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {p['max_abs_m']:.3g} | "
                     f"{p['mean_rel']:.2g} |")  # fmt: skip
    for s in result["skipped"]:
        lines.append(f"| {s['model']} | {s['weights']} | | {s['size_hw']} | {s['device']} | {s['precision']} | skipped: {s['why']} | | | |")
    for e in result["errors"]:
        lines.append(f"\nError: {e.get('model', e.get('model_dir'))}: {e['error']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
