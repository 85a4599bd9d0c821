"""Model registry and weights I/O: create/save/load, config hash, clear errors for bad or mismatched files."""

from __future__ import annotations

import json
import pickle

import pytest
from runtime_helpers import small_model, torch

from depth_nodes import models
from depth_nodes.runtime.errors import ModelError
from depth_nodes.runtime.frames import street_frame
from depth_nodes.runtime.preprocess import Normalisation, to_inputs_numpy


def _run(m, feed):
    with torch.inference_mode():
        return m(*(torch.from_numpy(feed[n]) for n in m.input_names))


def test_save_load_roundtrip_gives_the_same_outputs(tmp_path) -> None:
    m = small_model(seed=3)
    models.save(m, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    m2 = models.load(tmp_path / "m")
    img, sp = street_frame(32, 48)
    feed = to_inputs_numpy(img, sp, Normalisation(), m.stride)
    for a, b in zip(_run(m, feed), _run(m2, feed), strict=True):
        assert torch.equal(a, b)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model"] == "tiny_unet" and cfg["params"]["width"] == 4
    assert models.config_hash(cfg) == models.config_hash(models.config_of(m2))
    assert models.config_hash(cfg) != models.config_hash(models.config_of(small_model(width=8)))
    assert "tiny_unet" in models.available()


def test_model_outputs_metric_depth_and_confidence_in_range() -> None:
    m = small_model()
    img, sp = street_frame(40, 64)
    d, c = _run(m, to_inputs_numpy(img, sp, Normalisation(), m.stride))
    assert d.shape == c.shape == (1, 1, 40, 64)
    assert float(d.min()) >= 1.0 - 1e-4 and float(d.max()) <= 120.0 + 1e-3
    assert 0.0 <= float(c.min()) and float(c.max()) <= 1.0


def test_bad_configs_and_weights_give_clear_errors(tmp_path) -> None:
    with pytest.raises(ModelError, match="unknown model family 'nope'"):
        models.create("nope")
    with pytest.raises(ModelError, match="no parameter.*depthh"):
        models.create("tiny_unet", {"depthh": 3})
    with pytest.raises(ModelError, match="has no config.json"):
        models.load(tmp_path)
    d = tmp_path / "m"
    models.save(small_model(), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["params"]["width"] = 8  # config no longer matches the weights
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="do not match model 'tiny_unet'"):
        models.load(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        models.load(d)
    models.save(small_model(), d)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ModelError, match="cannot read weights"):
        models.load(d)


def test_third_party_checkpoints_are_never_unpickled(tmp_path) -> None:
    state = small_model().state_dict()
    torch.save({"state_dict": state}, tmp_path / "ok.pth")  # plain tensors: accepted with weights_only=True
    got = models.read_state_dict(tmp_path / "ok.pth")
    assert set(got) == set(state) and all(torch.equal(got[k], state[k]) for k in state)

    class Evil:
        def __reduce__(self):
            return (print, ("pickle code ran",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(ModelError, match="cannot read weights"):
        models.read_state_dict(tmp_path / "evil.pt")
