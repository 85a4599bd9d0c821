"""``/diagnostics`` of ``monocular`` mode: ERROR naming why without a usable monocular estimator, WARN with
published monocular depth with the shipped own net (``monocular_estimator: mono``, opt-in since issue 19).

One node per case (``/diagnostics`` is one global topic, so not next to another module's node).
"""

from __future__ import annotations

import importlib.util

import pytest
from node_io import feed_until, running_node

pytestmark = pytest.mark.ros

OK, WARN, ERROR = "0", "1", "2"
HAVE_ML = importlib.util.find_spec("onnxruntime") is not None or importlib.util.find_spec("torch") is not None


@pytest.mark.skipif(not HAVE_ML, reason="neither onnxruntime nor torch installed (depth_nodes[ml])")
def test_monocular_with_the_shipped_own_net_publishes_warn() -> None:
    """``monocular_estimator: mono`` (the shipped own net; opt-in, docs/node_bench.md): a LiDAR outage gives
    published monocular depth, WARN."""

    def settled(mode: str, level: str):
        return lambda d: d["mode"] == mode and d["level"] == level and "not published" not in d["message"]

    with running_node({"monocular_estimator": "mono"}) as (_, client, sender):
        feed_until(client, sender.send, settled("guided", OK))
        d = feed_until(client, lambda: sender.send(points=False), settled("monocular", WARN))
        assert d["published_mode"] == "monocular" and d["mono_state"] == "ready", d
        assert d["mono_scale"] != "no fit yet" and d["mono_backend"] in ("onnxruntime", "torch"), d


def settled_guided(d: dict) -> bool:
    return d["mode"] == "guided" and d["published_mode"] == "guided" and "not published" not in d["message"]


def _monocular_error(params: dict) -> dict:
    with running_node(params) as (_, client, sender):
        feed_until(client, sender.send, settled_guided)
        return feed_until(
            client,
            lambda: sender.send(points=False),
            lambda d: d["mode"] == "monocular" and d["level"] == ERROR,
        )


def test_monocular_without_estimator_is_error_no_depth_published() -> None:
    d = _monocular_error({"monocular_estimator": ""})
    assert d["message"].startswith("no depth published in the last"), d
    assert "no monocular estimator" in d["message"] and d["published_mode"] == "none", d


def test_monocular_estimator_unavailable_is_error_naming_the_reason(tmp_path) -> None:
    """Weights missing (same path as no [ml]): the node keeps running, monocular ERROR names the reason."""
    d = _monocular_error({"monocular_estimator": "mono", "mono_model_dir": str(tmp_path)})
    assert d["message"].startswith("no depth published in the last"), d
    assert (
        "monocular estimator 'mono' unavailable: " in d["message"] and "lacks config.json" in d["message"]
    ), d
    assert d["published_mode"] == "none", d


def test_unavailable_estimator_leaves_guided_ok_and_says_why(tmp_path) -> None:
    """A classical-only install (no [ml]) stays OK in guided mode; the key names why the fallback is missing."""
    with running_node({"monocular_estimator": "mono", "mono_model_dir": str(tmp_path)}) as (
        _,
        client,
        sender,
    ):
        d = feed_until(client, sender.send, lambda d: settled_guided(d) and d["level"] == OK)
        assert "monocular estimator 'mono' unavailable" in d["mono_state"], d
