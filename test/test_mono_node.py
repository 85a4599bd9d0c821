"""The node process with the own mono net (``monocular_estimator: mono``): the LiDAR stops -> monocular within the
hysteresis, metric depth keeps coming; the LiDAR resumes -> guided, blended without a jump. And the default lazy
fallback: nothing loaded while guided, loaded during ``lidar_memory``, monocular scaled by the memory's fits."""

from __future__ import annotations

import time

import node_scene as scene
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0): the mono net needs it")
from node_io import depth_array, start_node, stop_node  # noqa: E402

# slow: fits a small net to the scene in-process (~10 s on a free core, ~30 s on the shared 2-core CI box) and
# then runs the node process through an outage and a handover (~20 s): the one real-process test of the fallback.
pytestmark = [pytest.mark.ros, pytest.mark.slow]
HANDOVER = 3


def _train_scene_net(out) -> float:
    """A small own mono net (``mono_unet``, 8 channels, 3 levels) fitted to the test scene's camera image: the
    node test must not depend on how the shipped net generalises to a synthetic toy scene. Returns its MAE (m)
    after a scale fit on the scene's LiDAR, offline: the node can only do as well as that."""
    import json

    from depth_nodes.core.scale_fit import METRIC, fit_scale
    from depth_nodes.models import registry
    from depth_nodes.mono.net import normalise_rgb, ray_elevation
    from depth_nodes.mono.own import load_own_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = registry.create("mono_unet", {"width": 8, "levels": 3}).train()
    img = torch.from_numpy(normalise_rgb(scene.rgb_image()))[None]
    ray = torch.from_numpy(ray_elevation(scene.HEIGHT, scene.WIDTH, scene.K))[None, None]
    truth = torch.from_numpy(np.nan_to_num(scene.dense_depth(), nan=0.0))[None, None]
    valid = truth > 0
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    for _ in range(150):
        loss = (torch.log(model(img, ray)) - torch.log(truth.clamp_min(1e-3)))[valid].abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    registry.save(model.eval(), out)
    (out / "train.json").write_text(json.dumps({"args": {"focal_px": float(scene.K[1, 1])}}))
    pred = load_own_model(out).predict(scene.rgb_image(), scene.K)
    sparse = scene.projected_returns(*scene.lidar_scan())
    fit = fit_scale(pred, sparse, METRIC)
    t = scene.dense_depth()
    ok = np.isfinite(t)
    return float(np.mean(np.abs(fit.scale * pred[ok] - t[ok])))


def _ratio(depth: np.ndarray) -> float:
    truth = scene.dense_depth()
    ok = np.isfinite(truth) & np.isfinite(depth)
    return float(np.median(depth[ok] / truth[ok]))


@pytest.fixture(scope="module")
def scene_net(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("mono") / "scene_net"
    offline_mae_m = _train_scene_net(model_dir)
    assert offline_mae_m < 1.0, f"the scene net did not learn the scene: MAE {offline_mae_m:.2f} m"
    return model_dir, offline_mae_m


@pytest.fixture
def node(scene_net):  # stopped before the next test starts its own node (one node on the domain at a time)
    model_dir, offline_mae_m = scene_net
    proc, client, sender = start_node({"monocular_estimator": "mono", "mono_model_dir": str(model_dir),
                                       "mono_fit_period_frames": 1, "mono_handover_frames": HANDOVER,
                                       # one frame at a time, each waited for: the net may take its time
                                       "mono_frame_budget_s": 10.0,
                                       "lidar_memory": False})  # fmt: skip  (the outage goes straight to mono)
    try:
        yield proc, client, sender, offline_mae_m
    finally:
        stop_node(proc, client)


def test_lidar_outage_monocular_then_smooth_handover(node) -> None:
    proc, client, sender, offline_mae_m = node
    # The node's monocular frames use the scale fitted in guided mode and carried: on this static scene that
    # is the offline fit, so their MAE may exceed the offline MAE only by the EMA's smoothing of per-frame fits
    # (< 1 %: x1.1) plus 5 cm; a scale error of just 5 % would add ~0.4 m (mean depth ~8 m).
    mae_bound_m = 1.1 * offline_mae_m + 0.05
    stamps = []
    # The net loads on a background thread at node start-up (seconds on a loaded CI machine): stream guided
    # frames until the diagnostics name it ready, then the frames whose fits the outage carries.
    deadline = time.monotonic() + 90.0
    while not client.latest_diagnostics().get("mono_estimator", "").startswith("mono:"):
        assert time.monotonic() < deadline, f"mono net never became ready: {client.latest_diagnostics()}"
        stamps.append(sender.send())
        try:
            client.wait_stamp("depth/image_rect", stamps[-1], timeout=5.0)
        except TimeoutError:
            continue
    for _ in range(12):  # guided frames: the mono scale is refitted (fit period 1; one refit at a time)
        stamps.append(sender.send())
        try:
            client.wait_stamp("depth/image_rect", stamps[-1], timeout=5.0)
        except TimeoutError:
            continue
    d = client.latest_diagnostics()
    assert d["mode"] == "guided" and d["mono_estimator"].startswith("mono:"), d
    last = stamps[-1]
    truth = scene.dense_depth()
    mono_depths = []
    for i in range(1, 7):  # camera only, 0.2 s apart (> max_lidar_age_s); each waited for (one-slot mailbox)
        before = int(client.latest_diagnostics().get("frames_not_published", "0"))
        st = sender.send(points=False, stamp_ns=last + i * 200_000_000)
        if i >= 3:  # hysteresis 3: the 3rd LiDAR-less frame is monocular and published
            mono_depths.append(depth_array(client.wait_stamp("depth/image_rect", st, timeout=10.0)))
        else:  # still guided without a scan: not published
            client.wait_for(lambda b=before: int(client.latest_diagnostics().get("frames_not_published", "0")) > b,
                            10.0, "the LiDAR-less guided frame to be counted")  # fmt: skip
    d = client.wait_mode("monocular", 5.0)
    assert d["estimator"] == "mono" and float(d["mono_scale"]) > 0 and d["mono_fit_residual"], d
    assert float(d["mono_fit_age_s"]) >= 0.6  # carried from the last LiDAR frame
    for depth in mono_depths:
        ok = np.isfinite(truth) & np.isfinite(depth)
        assert ok.sum() > 0.8 * np.isfinite(truth).sum()  # depth keeps coming for most of the scene
        assert float(np.mean(np.abs(depth[ok] - truth[ok]))) < mae_bound_m
        assert np.nanmax(depth) <= 120.0  # max_depth_m: nothing invented beyond it (sky is NaN)
    # LiDAR back: monocular for the hysteresis, then guided blended over HANDOVER frames
    ratios = [_ratio(mono_depths[-1])]
    for _ in range(3 + HANDOVER + 2):
        st = sender.send()
        ratios.append(_ratio(depth_array(client.wait_stamp("depth/image_rect", st, timeout=10.0))))
    d = client.wait_mode("guided", 5.0)
    gap = abs(ratios[0] - ratios[-1])
    # No step larger than the mono-vs-guided gap split over the blend (plus 2 % for the LiDAR pixels written
    # back at once and the refits of the monocular frames with LiDAR); guided exact at the end.
    assert np.abs(np.diff(ratios)).max() <= gap / (HANDOVER + 1) + 0.02, ratios
    assert ratios[-1] == pytest.approx(1.0, abs=0.02), ratios
    assert "mode monocular -> guided" in proc.output()


def test_default_lazy_fallback_loads_after_lidar_loss_and_carries_the_memory_fit(scene_net) -> None:
    """Defaults (``mono_fit_period_frames`` 0, LiDAR memory on; no odometry TF: still-only memory, the scene is
    static): guided frames leave the net unloaded; the LiDAR stops -> ``lidar_memory`` serves at once while the
    net loads in the background; its scale is fitted to the memory returns of each memory frame; the memory ages
    out -> ``monocular`` publishes metric depth with the newest memory fit (younger than the last scan)."""
    model_dir, offline_mae_m = scene_net
    proc, client, sender = start_node({"mono_model_dir": str(model_dir), "memory_max_age_s": 1.0})
    try:
        stamps = [sender.send() for _ in range(1)]
        for _ in range(40):  # guided until settled
            stamps.append(sender.send())
            try:
                client.wait_stamp("depth/image_rect", stamps[-1], timeout=5.0)
            except TimeoutError:
                continue
            if client.latest_diagnostics().get("published_mode") == "guided":
                break
        d = client.latest_diagnostics()
        assert d["mode"] == "guided" and "loads when the node leaves guided mode" in d["mono_state"], d
        last_scan = stamps[-1]
        # LiDAR gone: camera only, stamps 0.2 s .. 0.9 s after the last scan (memory_max_age_s 1.0), paced in
        # wall time while the net loads on its thread (seconds on a loaded machine); memory serves meanwhile
        t_ns, deadline, fits = last_scan + 200_000_000, time.monotonic() + 90.0, 0
        while t_ns < last_scan + 900_000_000:
            st = sender.send(points=False, stamp_ns=t_ns)
            client.wait_stamp("depth/image_rect", st, timeout=10.0)  # published: memory (+ mono once loaded)
            d = client.latest_diagnostics()  # periodic: may lag a frame or two
            fits = int(d.get("mono_fits", "0"))
            t_ns += 100_000_000 if fits >= 3 else 2_000_000
            assert time.monotonic() < deadline, f"the mono net never loaded: {d}"
            time.sleep(0.05)
        assert fits >= 3 and d["mono_state"] == "ready" and d["mode"] == "lidar_memory", d
        assert float(d["memory_mono_share_px"]) > 0.1 and d["memory_mono"] == "ready", d  # mono fills, fitted
        last_memory = t_ns - 100_000_000
        truth = scene.dense_depth()
        for i in range(1, 4):  # aged out: monocular after the hysteresis (3), scale of the memory fits
            before = int(client.latest_diagnostics().get("frames_not_published", "0"))
            st = sender.send(points=False, stamp_ns=last_scan + 1_100_000_000 + i * 100_000_000)
            if i == 3:  # each frame waited for (one-slot mailbox)
                depth = depth_array(client.wait_stamp("depth/image_rect", st, timeout=10.0))
            else:  # still lidar_memory (hysteresis) with the memory aged out: not published
                client.wait_for(lambda b=before: int(client.latest_diagnostics().get("frames_not_published", "0")) > b,
                                10.0, "the aged-out memory frame to be counted")  # fmt: skip
        client.wait_for(lambda: client.latest_diagnostics().get("published_mode") == "monocular", 10.0,
                        "diagnostics after the monocular frame")  # fmt: skip
        d = client.latest_diagnostics()
        assert d["mode"] == "monocular" and "aged out" in d["mode_reason"], d
        fit_age_s = float(d["mono_fit_age_s"])
        assert fit_age_s <= (st - last_memory) * 1e-9 + 0.05 < (st - last_scan) * 1e-9, d  # a memory frame's fit
        ok = np.isfinite(truth) & np.isfinite(depth)
        assert ok.sum() > 0.8 * np.isfinite(truth).sum()
        assert float(np.mean(np.abs(depth[ok] - truth[ok]))) < 1.1 * offline_mae_m + 0.05
    finally:
        stop_node(proc, client)
