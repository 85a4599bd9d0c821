"""Which NVIDIA GPU this is, without relying on a CUDA build of torch alone.

:func:`detect_gpu` answers "is there an NVIDIA GPU here, and how do we know": torch CUDA; a Jetson (JetPack's
``/etc/nv_tegra_release``, ``/dev/nvhost-*`` device nodes, ``/proc/device-tree/model`` naming a Jetson); a
desktop/server driver (cuda-python's ``cudaGetDeviceCount``, ``nvidia-smi -L``, ``/proc/driver/nvidia/gpus``). A Jetson with a CPU-only torch (pip's
default wheel) is found, so ``auto`` says why it does not run TensorRT instead of silently using the CPU.

:class:`GpuInfo` is the GPU as the engine cache key sees it. An engine is tied to the exact device: on a Jetson
the CUDA name is just "Orin" for the AGX Orin, Orin NX and Orin Nano alike (different SM counts and memory, so
different tactics), so the board model of ``/proc/device-tree/model`` -- else the memory size -- is appended.
"""

from __future__ import annotations

import glob
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
TEGRA_RELEASE = Path("/etc/nv_tegra_release")


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\x00", b"").decode(errors="replace").strip()
    except OSError:
        return ""


def jetson_model(model_file: Path | None = None) -> str:
    """``"NVIDIA Jetson AGX Orin Developer Kit"`` on a Jetson, else ''."""
    text = _read(model_file or DEVICE_TREE_MODEL)
    return text if "jetson" in text.lower() or "nvidia" in text.lower() else ""


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.7"

    @classmethod
    def of(cls, device: str, model_file: Path | None = None) -> GpuInfo:
        import torch

        idx = torch.device(device).index or 0
        major, minor = torch.cuda.get_device_capability(idx)
        name = torch.cuda.get_device_name(idx)
        mem_gib = torch.cuda.get_device_properties(idx).total_memory / 2**30
        return cls(board_name(name, mem_gib, model_file), f"{major}.{minor}")


def board_name(cuda_name: str, memory_gib: float, model_file: Path | None = None) -> str:
    """The CUDA device name, made unique per Jetson board (model string, else memory size)."""
    integrated = any(k in cuda_name.lower() for k in ("orin", "xavier", "tegra", "nano"))
    if not integrated:
        return cuda_name
    model = jetson_model(model_file)
    return f"{cuda_name} ({model})" if model else f"{cuda_name} ({memory_gib:.0f} GiB)"


def detect_gpu(torch_ok: bool | None = None) -> tuple[str, str]:
    """``(gpu name or '', how it was found)``; torch CUDA first, then the driver / Jetson markers."""
    if torch_ok is None:
        torch_ok = importlib.util.find_spec("torch") is not None
    if torch_ok:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0), "torch CUDA"
    name = _cuda_python_gpu()
    if name:
        return name, "cuda-python (cudaGetDeviceCount / cudaGetDeviceProperties)"
    model = jetson_model()
    nvhost = sorted(glob.glob("/dev/nvhost-*"))
    if TEGRA_RELEASE.is_file() or nvhost or "jetson" in model.lower():
        marks = [str(TEGRA_RELEASE)] if TEGRA_RELEASE.is_file() else []
        marks += nvhost[:1] + ([f"{DEVICE_TREE_MODEL}: {model}"] if model else [])
        return (model or "NVIDIA Jetson"), "Jetson: " + ", ".join(marks)
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out.startswith("GPU "):
            return out.splitlines()[0].split(":", 1)[1].split("(UUID")[0].strip(), "nvidia-smi -L"
    gpus = sorted(glob.glob("/proc/driver/nvidia/gpus/*"))
    if gpus:
        return "NVIDIA GPU", f"NVIDIA driver ({gpus[0]})"
    return "", "no NVIDIA GPU found (torch CUDA, cuda-python, Jetson markers, nvidia-smi, /proc/driver/nvidia)"


def _cuda_python_gpu() -> str:
    """The first CUDA device's name via NVIDIA's cuda-python (``cuda.bindings.runtime``), '' when absent/none."""
    try:
        if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
            return ""
        from cuda.bindings import runtime as rt

        err, count = rt.cudaGetDeviceCount()
        if int(err) != 0 or count < 1:
            return ""
        err, prop = rt.cudaGetDeviceProperties(0)
        return prop.name.decode(errors="replace").strip("\x00") if int(err) == 0 else "CUDA GPU"
    except Exception:  # noqa: BLE001 - a broken optional package must not break backend selection
        return ""


def torch_cuda_build() -> str:
    """torch's CUDA version ('' for a CPU-only build or no torch)."""
    if importlib.util.find_spec("torch") is None:
        return ""
    import torch

    return str(torch.version.cuda or "")
