"""``/diagnostics`` of ``monocular`` mode without a usable monocular estimator: ERROR naming why.

One node per case (``/diagnostics`` is one global topic, so not next to another module's node); the shipped
own net (``monocular_estimator: mono``) publishing monocular depth is in ``test_node_diagnostics.py``.
"""

from __future__ import annotations

import pytest
from node_io import feed_until, running_node

pytestmark = pytest.mark.ros

OK, ERROR = "0", "2"


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
