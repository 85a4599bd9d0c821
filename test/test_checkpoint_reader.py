"""The checkpoint reader never executes a pickle: official containers import, hostile ones are refused unrun."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
from published_helpers import FIXTURES

torch = pytest.importorskip("torch", reason="torch not installed (pip install '.[ml]')")

from depth_nodes.cli import main  # noqa: E402
from depth_nodes.models.checkpoint import (  # noqa: E402
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    CheckpointError,
    UnsafeCheckpointError,
    read_raw,
)
from depth_nodes.models.importer import read_checkpoint  # noqa: E402
from depth_nodes.runtime.errors import ModelError  # noqa: E402

LEGACY = FIXTURES / "penet_container_legacy.pth.tar"
ZIP = FIXTURES / "penet_container_zip.pth.tar"
EXPECTED = FIXTURES / "penet_container_expected_model.pt"


def _need_containers() -> None:
    if not (LEGACY.is_file() and ZIP.is_file() and EXPECTED.is_file()):
        pytest.skip(f"container fixtures missing in {FIXTURES} (penet_container_*.pth.tar / _expected_model.pt)")


@pytest.mark.parametrize("name", ["legacy", "zip"])
def test_official_containers_import_to_exactly_the_expected_tensors(name: str) -> None:
    _need_containers()
    expected = torch.load(EXPECTED, weights_only=True)
    with pytest.raises(Exception, match="Unsupported global|weights_only"):  # why this reader exists
        torch.load(LEGACY if name == "legacy" else ZIP, weights_only=True)
    ck = read_checkpoint(LEGACY if name == "legacy" else ZIP)
    assert ck.layout == name and ck.epoch == 29
    assert list(ck.state) == list(expected)
    for key, want in expected.items():
        got = ck.state[key]
        assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want), key
    # the foreign objects became inert records, kept as data for the provenance
    assert ck.args["network_model"] == "pe" and ck.args["dilation_rate"] == 2 and ck.args["val_w"] == 1216
    assert ck.best_result["rmse"] == pytest.approx(0.73) and ck.best_result["mae"] == pytest.approx(0.21)
    assert ck.ignored == ["optimizer"]


@pytest.mark.parametrize("legacy", [True, False])
def test_bare_state_dicts_and_module_prefixes(tmp_path: Path, legacy: bool) -> None:
    state = OrderedDict(
        [("module.a.weight", torch.arange(12.0).reshape(3, 4)), ("module.b", torch.tensor([1, 2], dtype=torch.int64))]
    )
    state["module.view"] = state["module.a.weight"][:, 1]  # a strided view sharing the storage
    p = tmp_path / "bare.pt"
    torch.save(state, p, _use_new_zipfile_serialization=not legacy)
    ck = read_checkpoint(p)
    assert list(ck.state) == ["a.weight", "b", "view"]
    assert torch.equal(ck.state["a.weight"], state["module.a.weight"])
    assert torch.equal(ck.state["view"], torch.tensor([1.0, 5.0, 9.0])) and ck.state["b"].dtype == torch.int64
    torch.save({"state_dict": {"x": torch.ones(2)}}, p)
    assert torch.equal(read_checkpoint(p).state["x"], torch.ones(2))


class _Evil:
    def __init__(self, marker: Path, fn=os.system) -> None:
        self.marker, self.fn = marker, fn

    def __reduce__(self):
        return (self.fn, (f"touch {self.marker}",))


def _legacy_bytes(obj_pickle: bytes) -> bytes:
    return b"".join(
        [pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(LEGACY_PROTOCOL, 2), pickle.dumps({"little_endian": True}, 2),
         obj_pickle, pickle.dumps([], 2)]
    )  # fmt: skip


def _zip_with(path: Path, data_pkl: bytes) -> Path:
    """A real torch zip checkpoint whose data.pkl is replaced by ``data_pkl``."""
    good = path.with_suffix(".good")
    torch.save({"model": {"w": torch.ones(1)}}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = data_pkl if item.filename.endswith("/data.pkl") else src.read(item.filename)
            dst.writestr(item, data)
    return path


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_a_pickle_calling_os_system_is_refused_and_runs_nothing(tmp_path: Path, layout: str, capsys) -> None:
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"epoch": 1, "model": {"w": _Evil(marker)}}, protocol=2)
    assert b"system" in payload  # the payload names os.system (posix.system here)
    with pytest.raises(AssertionError):  # sanity: plain pickle would run it
        pickle.loads(pickle.dumps(_Evil(tmp_path / "plain"), 2))
        assert not (tmp_path / "plain").exists()
    (tmp_path / "plain").unlink()
    path = tmp_path / "evil.pth.tar"
    if layout == "legacy":
        path.write_bytes(_legacy_bytes(payload))
    else:
        _zip_with(path, payload)
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os|nt)\.system") as err:
        read_checkpoint(path)
    assert "nothing was executed" in str(err.value)
    assert not marker.exists()
    # the command: exit 1 naming the global, no model directory written
    assert main(["model", "import", "penet", str(path), "-o", str(tmp_path / "out")]) == 1
    assert "system" in capsys.readouterr().err and not (tmp_path / "out").exists() and not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen"), ("torch", "load"),
     ("numpy.core.multiarray", "_reconstruct"), ("torch._utils", "_rebuild_device_tensor_from_numpy"),
     ("copyreg", "_reconstructor"), ("metrics", "evil_function")],
)  # fmt: skip
def test_any_other_global_is_refused_by_name(tmp_path: Path, module: str, name: str) -> None:
    # GLOBAL (protocol 2) and STACK_GLOBAL (protocol 4) opcodes both go through the allowlist
    for payload in (
        b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.",
        b"\x80\x04\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) + name.encode()
        + b"\x93)R.",
    ):  # fmt: skip
        p = tmp_path / "g.pt"
        p.write_bytes(_legacy_bytes(payload))
        with pytest.raises(UnsafeCheckpointError, match=rf"{module}\.{name}"):
            read_raw(p)


def _p2(*ops: bytes) -> bytes:
    return b"\x80\x02" + b"".join(ops) + b"."


G_TENSOR = b"ctorch._utils\n_rebuild_tensor_v2\n"
G_ODICT = b"ccollections\nOrderedDict\n"


@pytest.mark.parametrize(
    "payload, match",
    [
        # REDUCE of the tensor rebuilder with a string instead of a storage
        (_p2(G_TENSOR, b"(X\x03\x00\x00\x00abcK\x00)))tR"), "not a storage record"),
        # REDUCE of OrderedDict with a non-iterable-of-pairs argument, and with two arguments
        (_p2(G_ODICT, b"(K\x05tR"), "OrderedDict"),
        (_p2(G_ODICT, b"(]]tR"), "OrderedDict"),
        # BUILD on an allowlisted callable (would rebind its attributes)
        (_p2(G_ODICT, b"}(X\x03\x00\x00\x00fooK\x01ub"), "modify"),
        # a storage type called like a function
        (_p2(b"ctorch\nFloatStorage\n", b"(K\x03tR"), "storage type"),
        # a persistent id that is not a storage
        (_p2(b"(X\x06\x00\x00\x00moduletQ"), "persistent record 'module'"),
        # BUILD on a record class itself (slot state would set class attributes): refused, class untouched
        (_p2(b"cargparse\nNamespace\n", b"N}(X\x0c\x00\x00\x00__setstate__K\x01u\x86b"), "__setstate__"),
    ],
)
def test_allowed_callables_cannot_be_abused(tmp_path: Path, payload: bytes, match: str) -> None:
    p = tmp_path / "abuse.pt"
    p.write_bytes(_legacy_bytes(payload))
    with pytest.raises(ModelError, match=match) as err:  # UnsafeCheckpointError, or a refused malformed BUILD
        read_raw(p)
    assert isinstance(err.value, (UnsafeCheckpointError, CheckpointError))


def test_out_of_bounds_strides_and_truncation_are_errors(tmp_path: Path) -> None:
    p = tmp_path / "t.pt"
    torch.save({"w": torch.arange(6.0)}, p, _use_new_zipfile_serialization=False)
    raw = p.read_bytes()
    # grow the recorded size (6,) -> (60,) in the pickle: reads past the storage
    bad = raw.replace(b"K\x06\x85", b"K<\x85", 1)
    assert bad != raw
    p.write_bytes(bad)
    with pytest.raises(CheckpointError, match="past its storage"):
        read_checkpoint(p)
    p.write_bytes(raw[:-8])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(p)
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_checkpoint(p)
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        read_checkpoint(p)
    with pytest.raises(ModelError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_import_checks_family_and_recorded_args(tmp_path: Path, capsys) -> None:
    _need_containers()
    # the container holds 4 of PENet's tensors: import names what is missing, and the ENet/PENet mix-up
    assert main(["model", "import", "penet", str(ZIP), "-o", str(tmp_path / "p")]) == 1
    assert "443 missing" in capsys.readouterr().err
    assert main(["model", "import", "enet", str(ZIP), "-o", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert "network_model" in err and "'pe'" in err  # recorded args say PENet
    assert not (tmp_path / "p").exists() and not (tmp_path / "e").exists()

