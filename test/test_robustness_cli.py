"""``depth-nodes robustness`` end to end on a one-frame synthetic drive, severities 1 and 5 (fast), and its
error paths."""

import json

import pytest

from depth_nodes.cli import main


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rob")
    assert (
        main(
            [
                "robustness",
                "--frames",
                "1",
                "--estimators",
                "nearest,guided",
                "--severities",
                "1,5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_report_files_and_rows(report):
    data = json.loads((report / "robustness.json").read_text())
    rows = data["rows"]
    keys = {(r["estimator"], r["kind"], r["corruption"], r["severity"]) for r in rows}
    assert ("nearest", "clean", "clean", 0) in keys and ("guided", "image", "fog", 5) in keys
    assert ("nearest", "lidar", "beam_missing", 5) in keys and (
        "guided",
        "misalignment",
        "time_offset",
        1,
    ) in keys
    # nearest never reads the image: no image rows, reported immune in the summary
    assert not any(r["estimator"] == "nearest" and r["kind"] == "image" for r in rows)
    immune = [s for s in data["summary"] if s["estimator"] == "nearest" and s["family"].startswith("image/")]
    assert immune and all(s.get("immune") for s in immune)
    clean = {r["estimator"]: r for r in rows if r["kind"] == "clean"}
    worst = {r["estimator"]: r for r in rows if r["corruption"] == "rotation_drift" and r["severity"] == 5}
    for est in ("nearest", "guided"):
        assert worst[est]["rmse_mm"] > 1.2 * clean[est]["rmse_mm"]  # a 4 deg drift must hurt
        assert 0 <= clean[est]["ause_rmse"] < clean[est]["ause_rmse_random"]  # confidence beats random
    assert {d["defence"] for d in data["defences"]} == {"none", "isolated_rejection", "consistency"}
    assert len(data["spoof"]) == 10 and any("PGD not applicable" in n for n in data["notes"])
    html = (report / "index.html").read_text()
    assert "plots/lidar_beam_missing.png" in html and "Summary per family" in html
    assert (report / "plots" / "image_fog.png").stat().st_size > 5000
    assert len(list((report / "plots").glob("*.png"))) == 18 + 10 + 3 + 1


def test_unknown_estimator_and_bad_options_fail_cleanly(tmp_path, capsys):
    assert main(["robustness", "--estimators", "nope", "--out", str(tmp_path)]) == 1
    assert "unknown estimators ['nope']" in capsys.readouterr().err
    assert main(["robustness", "--only", "radar", "--out", str(tmp_path)]) == 1
    assert main(["robustness", "--gt", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert main(["robustness", "--severities", "0,6", "--out", str(tmp_path)]) == 1


def test_an_estimator_that_cannot_be_built_is_skipped_by_default_and_fatal_when_asked(
    tmp_path, monkeypatch, capsys
):
    from depth_nodes.completion import registry
    from depth_nodes.errors import DepthNodesError

    def broken(**_):
        raise DepthNodesError("model directory lacks model.safetensors")

    class LazyBroken:  # builds, then fails on its first frame (a model loaded lazily without weights)
        name, uses_image = "lazy_broken_for_test", True

        def complete(self, sparse, image=None, *, conditioned=False):
            raise DepthNodesError("weights missing")

    monkeypatch.setitem(registry._FACTORIES, "broken_for_test", broken)
    monkeypatch.setitem(registry._FACTORIES, "lazy_broken_for_test", LazyBroken)
    monkeypatch.setattr(
        registry, "available", lambda: {"nearest": "", "broken_for_test": "", "lazy_broken_for_test": ""}
    )
    argv = ["robustness", "--frames", "1", "--severities", "5", "--only", "misalignment", "--no-attacks"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "robustness.json").read_text())
    assert data["config"]["estimators"] == ["nearest"]
    assert any("broken_for_test: skipped" in n and "safetensors" in n for n in data["notes"])
    assert any("lazy_broken_for_test: dropped" in n and "weights missing" in n for n in data["notes"])
    assert main([*argv, "--estimators", "broken_for_test", "--out", str(tmp_path)]) == 1
    assert "cannot be built: model directory lacks" in capsys.readouterr().err
