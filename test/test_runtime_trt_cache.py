"""The TensorRT engine cache: file modes, other users' files, unsafe directories, external-weight ONNX, key fields.

Every test here fails on the code before issue 22: mkstemp's 0600 files, a bare PermissionError (or silently
loading another user's engine), no directory checks, ``parser.parse(data)`` without the path, a key blind to the
``.data`` file and the workspace size.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import exported_model
from runtime_trt_fakes import make_fake_trt

from depth_nodes.runtime.errors import EngineError, ModelError
from depth_nodes.runtime.frames import street_frame
from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy
from depth_nodes.runtime.trt_backend import TensorRTBackend
from depth_nodes.runtime.trt_cache import EngineCache, atomic_write, read_trusted
from depth_nodes.runtime.trt_gpu import GpuInfo

ORIN = GpuInfo("Orin (NVIDIA Jetson AGX Orin Developer Kit)", "8.7")
RES = [(32, 48)]
OTHER_UID = 65534  # nobody
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    return exported_model(tmp_path_factory)


def make(onnx, cache, trt, **kw) -> TensorRTBackend:
    b = TensorRTBackend(onnx, "fp32", "cpu", cache, RES, trt_module=trt, gpu=ORIN, on_line=lambda s: None, **kw)
    b.ensure_loaded()
    return b


def feed(h: int = 32, w: int = 48) -> dict:
    img, sp = street_frame(h, w, seed=3)
    return to_inputs_numpy(img, sp, Normalisation(), 4)


def test_cache_files_are_0644(exported, tmp_path) -> None:
    old = os.umask(0o077)  # even a private umask: the engine must stay readable for other users of the cache
    try:
        b = make(exported["onnx"], tmp_path, make_fake_trt("10.3.0"))
    finally:
        os.umask(old)
    for p in (b.engine_file, b.engine_file.with_suffix(".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root (CI runs as root)")
def test_an_engine_of_another_user_is_refused_with_a_clear_engine_error(exported, tmp_path) -> None:
    trt = make_fake_trt("10.3.0")
    b = make(exported["onnx"], tmp_path, trt)
    for p in (b.engine_file, b.engine_file.with_suffix(".json")):  # as an older depth_nodes of user 'nobody' left it
        os.chown(p, OTHER_UID, OTHER_UID)
        os.chmod(p, 0o600)
    with pytest.raises(EngineError, match=r"belongs to 'nobody' \(uid 65534\).*executable code.*engine_cache_dir"):
        make(exported["onnx"], tmp_path, trt)
    assert trt.calls["builds"] == 1  # not silently rebuilt over, not loaded


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root (CI runs as root)")
def test_an_unreadable_0600_file_gives_an_engine_error_not_a_permission_error() -> None:
    """A root-owned (trusted) 0600 entry read by an ordinary user: the message says whose file and what to do."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="trt_cache_")).resolve()  # 0700 pytest dirs would hide it: a /tmp one
    os.chmod(d, 0o755)
    f = d / "m-fp32-0.engine"
    f.write_bytes(b"plan")
    os.chmod(f, 0o600)
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from depth_nodes.runtime.trt_cache import read_trusted\n"
        "from depth_nodes.runtime.errors import EngineError, ModelError\n"
        f"os.setgid({OTHER_UID}); os.setuid({OTHER_UID})  # after the imports: python lives under /root here\n"
        "try:\n"
        f"    read_trusted(Path({str(f)!r}))\n"
        "except EngineError as exc:\n"
        "    print('EngineError:', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    finally:
        shutil.rmtree(d)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "EngineError:" in r.stdout and "mode 0600" in r.stdout and "not readable by 'nobody'" in r.stdout
    assert "chmod 644" in r.stdout and "PermissionError" not in r.stdout


def test_unsafe_cache_directories_are_refused(tmp_path) -> None:
    open_dir = tmp_path / "world"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(EngineError, match="world-writable.*executable code"):
        EngineCache(open_dir)
    f = tmp_path / "ok" / "x.engine"
    EngineCache(f.parent)
    atomic_write(f, b"plan")
    os.chmod(f, 0o666)
    with pytest.raises(EngineError, match="world-writable"):
        read_trusted(f)
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, OTHER_UID, OTHER_UID)
        with pytest.raises(EngineError, match="engine_cache_dir .* belongs to 'nobody'"):
            EngineCache(theirs)


def _external(src: Path, out: Path) -> Path:
    import onnx

    m = onnx.load(str(src))
    onnx.save_model(m, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=out.name + ".data", size_threshold=0)  # fmt: skip
    return out


def test_external_weight_onnx_is_parsed_with_its_path_and_keyed_by_its_data(exported, tmp_path) -> None:
    import onnx
    from onnx import numpy_helper

    d = tmp_path / "ext"
    d.mkdir()
    onnx_path = _external(exported["onnx"], d / "model.onnx")
    assert (d / "model.onnx.data").is_file()
    trt = make_fake_trt("10.13.3")
    b = make(onnx_path, tmp_path / "cache", trt)
    assert trt.calls["parsed_paths"] == [str(onnx_path)]
    from depth_nodes.runtime.ort_backend import OnnxRuntimeBackend

    f = feed()
    assert np.abs(b.infer(f)["depth"] - OnnxRuntimeBackend(exported["onnx"]).infer(f)["depth"]).max() < 1e-6
    # retrained weights in the .data file, the .onnx byte-identical: another engine
    m = onnx.load(str(onnx_path))
    first = next(t for t in m.graph.initializer if t.dims and np.prod(t.dims) > 1)
    arr = numpy_helper.to_array(first).copy() * 1.5
    first.CopyFrom(numpy_helper.from_array(arr, first.name))
    retrained = d / "retrained"
    retrained.mkdir()
    onnx.save_model(m, str(retrained / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)  # fmt: skip
    (d / "model.onnx.data").write_bytes((retrained / "model.onnx.data").read_bytes())
    make(onnx_path, tmp_path / "cache", trt)
    assert trt.calls["builds"] == 2, "a changed .data file must change the engine key"
    (d / "model.onnx.data").unlink()
    with pytest.raises(ModelError, match=r"model\.onnx\.data"):  # named, not a parser crash
        make(onnx_path, tmp_path / "cache", trt)


def test_jetson_boards_are_told_apart(tmp_path) -> None:
    from depth_nodes.runtime.trt_gpu import board_name

    model = tmp_path / "model"
    names = set()
    for board in ("NVIDIA Jetson AGX Orin Developer Kit", "NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
                  "NVIDIA Jetson Orin Nano Developer Kit"):  # fmt: skip
        model.write_bytes(board.encode() + b"\x00")  # device-tree strings end in NUL
        names.add(board_name("Orin", 7.4, model))
    assert len(names) == 3 and "Orin (NVIDIA Jetson AGX Orin Developer Kit)" in names
    model.unlink()  # no device tree: the memory size tells an 8 GB Nano from a 64 GB AGX
    assert board_name("Orin", 7.4, model) != board_name("Orin", 61.4, model)
    assert board_name("NVIDIA GeForce RTX 4090", 24.0, model) == "NVIDIA GeForce RTX 4090"
