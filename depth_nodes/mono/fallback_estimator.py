"""The pipeline's monocular fallback estimators: a mono model + the scale tracker + the handover back to guided.

Names in the pipeline's estimator table (:data:`depth_nodes.pipeline.estimators.BUILTIN_ESTIMATORS`; node
parameter ``monocular_estimator``; the model directory is ``mono_model_dir``):

- ``mono``: the own small net (shipped weights when ``mono_model_dir`` is empty);
- ``depth_anything_v2``: a Depth Anything V2 directory (relative or metric, read from its config);
- ``prompt_depth_anything``: a Prompt Depth Anything directory; the frame's projected LiDAR is the prompt
  when it has one (a degraded scan), otherwise it runs unprompted.

Loading (:class:`GuardedMono`). With ``fit_period_frames`` 0 (the default) nothing is loaded and no net runs
while the node is in ``guided`` mode: the guided frames only keep a reference to their image + projected LiDAR
(the newest one); the model loads on a background thread when the node first leaves guided mode
(:meth:`GuardedMono.ensure_loaded`, called by the pipeline in ``lidar_memory`` / ``monocular`` after a guided
frame: a node started before its LiDAR arrives has no scale to fit and loads nothing yet) and, once
loaded, fits its first scale to that last guided frame's LiDAR on the same thread. In ``lidar_memory`` mode
every frame's fit on the carried memory returns is folded into the tracker (:meth:`GuardedMono.note_fit`), so
when the memory ages out, ``monocular`` carries the newest of them. With ``fit_period_frames`` n > 0 the model
loads at start and in ``guided`` mode :meth:`MonoEstimator.observe` runs it every n-th frame, its scale fitted
to that frame's LiDAR (the behaviour before issue 21's lazy default). In ``monocular`` mode :meth:`estimate`
applies the carried scale (refitting on the frame's own LiDAR when a degraded scan still has enough returns).
When the LiDAR returns, the first ``handover_frames`` guided frames are blended from the mono depth to the
guided depth (inverse depth, linear weights), so the output does not jump by the carried scale's error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from depth_nodes.completion.base import Completion
from depth_nodes.core.scale_fit import ScaleFitError, ScaleTracker, blend, fit_scale
from depth_nodes.errors import DepthNodesError, EmptyInputError
from depth_nodes.mono.runner import LatestJobRunner

log = logging.getLogger(__name__)
MONO, DA_V2, PROMPT_DA = "mono", "depth_anything_v2", "prompt_depth_anything"


@dataclass
class MonoOptions:
    """Settings of the monocular estimator (node parameters ``mono_*``)."""

    model_dir: str = ""
    half_life_s: float = 5.0
    handover_frames: int = 5
    #: Guided-mode refit period (frames); 0 = no guided refits, the model loads when the node leaves guided mode.
    fit_period_frames: int = 0
    min_fit_points: int = 200
    #: Depth Anything: the processor's target size (px, both sides; 0 = the directory's preprocessor_config.json)
    input_size_px: int = 0
    device: str = "auto"  # Depth Anything: auto = cuda:0 when torch sees a CUDA GPU, else cpu
    backend: str = "auto"  # Depth Anything: auto | torch | onnxruntime | tensorrt (auto: TensorRT on a GPU)
    precision: str = "fp32"
    engine_cache_dir: str = "~/.cache/depth_nodes/engines"
    camera_hw: tuple[int, int] = (352, 1216)  # the camera size a DA ONNX / engine is made for
    #: The node's worker waits at most this long for a monocular estimate of the frame (s); see GuardedMono.
    frame_budget_s: float = 1.0
    #: Depth beyond which the far falloff of the confidence halves it (m).
    confidence_far_m: float = 30.0


def load_model(kind: str, opts: MonoOptions):
    """The predictor of ``kind`` (:data:`MONO`, :data:`DA_V2`, :data:`PROMPT_DA`)."""
    if kind == MONO:
        from depth_nodes.mono.own import load_own_model

        return load_own_model(opts.model_dir, backend="auto")
    from depth_nodes.mono.hf import MonoModelError, load_hf_model

    model = load_hf_model(opts.model_dir, opts.input_size_px, opts.device, opts.backend, opts.precision,
                          opts.engine_cache_dir, tuple(opts.camera_hw))  # fmt: skip
    if (kind == PROMPT_DA) != model.prompted:
        raise MonoModelError(f"{opts.model_dir} holds {model.name}, not a {kind} model")
    return model


class MonoEstimator:
    """A monocular predictor made metric by a :class:`ScaleTracker` (see the module docstring)."""

    needs_image = True
    needs_lidar = False

    def __init__(self, model, opts: MonoOptions | None = None) -> None:
        self.model = model
        self.opts = opts or MonoOptions()
        self.name = model.name
        self.tracker = ScaleTracker(model.kind, half_life_s=self.opts.half_life_s)
        self._lock = threading.Lock()
        self._guided_frames = 0
        self._handover_left = 0
        self._was_mono = False
        self.last_error = ""
        self.n_fits = 0

    # ------------------------------------------------------------------ model + fit
    def _predict(self, inputs) -> np.ndarray:
        sparse = inputs.sparse.depth if inputs.sparse is not None else None
        if getattr(self.model, "prompted", False):
            return self.model.predict(inputs.rgb, sparse)[0]
        if hasattr(self.model, "focal_px"):  # own net: needs the intrinsics
            return self.model.predict(inputs.rgb, inputs.camera.K)
        return self.model.predict(inputs.rgb)[0]

    def predict(self, inputs) -> np.ndarray:
        """The model's raw prediction of ``inputs.rgb`` (kind ``tracker.kind``), no scale: the LiDAR memory
        fits its own scale to the carried returns of the frame (``pipeline.memory_mode``)."""
        with self._lock:
            return self._predict(inputs)

    def _fit(self, pred: np.ndarray, inputs) -> None:
        sparse = inputs.sparse
        if sparse is None or int(np.count_nonzero(sparse.depth)) < self.opts.min_fit_points:
            return
        max_depth = inputs.max_depth_m or 120.0
        try:
            fit = fit_scale(
                pred, sparse.depth, self.tracker.kind, max_depth_m=max_depth, stamp_ns=inputs.stamp_ns
            )
        except ScaleFitError as exc:
            self.last_error = str(exc)
            return
        if self.tracker.update(fit):
            self.n_fits += 1

    def _metric(self, pred: np.ndarray, inputs) -> Completion:
        max_depth = inputs.max_depth_m or 120.0
        if self.tracker.state is None:  # metric models too: their own scale is not this camera's (issue 11)
            raise EmptyInputError(
                "monocular: no scale fit yet (the LiDAR has not been seen with this camera)"
            )
        depth = self.tracker.apply(pred, max_depth)
        conf0 = self.tracker.confidence(inputs.stamp_ns)
        with np.errstate(invalid="ignore"):
            conf = (conf0 / (1.0 + depth / self.opts.confidence_far_m)).astype(np.float32)
        conf[~np.isfinite(depth)] = 0.0
        return Completion(depth, conf)

    # ------------------------------------------------------------------ pipeline hooks
    def estimate(self, inputs) -> Completion:
        """Monocular mode: the carried (or, with a degraded scan, refreshed) scale applied to the prediction."""
        if inputs.rgb is None:
            raise EmptyInputError("the monocular estimator needs the camera image")
        with self._lock:
            self._was_mono = True
            self._guided_frames = 0
            pred = self._predict(inputs)
            self._fit(pred, inputs)
            return self._metric(pred, inputs)

    def observe(self, inputs, guided: Completion) -> Completion:
        """Guided mode: keep the scale fresh; blend the handover after monocular frames. Never raises."""
        with self._lock:
            if self._was_mono:
                self._was_mono = False
                self._handover_left = max(0, int(self.opts.handover_frames))
            self._guided_frames += 1
            handover = self._handover_left > 0
            period = int(self.opts.fit_period_frames)
            if not handover and (period <= 0 or (self._guided_frames - 1) % period):
                return guided
            try:
                pred = self._predict(inputs)
                mono = self._metric(pred, inputs) if handover and self.tracker.state is not None else None
                if (
                    mono is None or self._handover_left == 1
                ):  # the blend holds the carried scale until its end
                    self._fit(pred, inputs)
            except DepthNodesError as exc:
                self.last_error = str(exc)
                return guided
            except Exception as exc:  # noqa: BLE001 - the mono model must never break guided frames
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("monocular model failed in guided mode: %s", self.last_error)
                return guided
            if mono is None:
                self._handover_left = 0
                return guided
            n = max(1, int(self.opts.handover_frames))
            w = (n + 1 - self._handover_left) / (n + 1)  # 1/(n+1) .. n/(n+1), then guided alone
            self._handover_left -= 1
            depth = blend(mono.depth, guided.depth, w)
            conf = (w * guided.confidence + (1 - w) * np.nan_to_num(mono.confidence)).astype(np.float32)
            conf[~np.isfinite(depth)] = 0.0
            return Completion(depth, conf, guided.kept_returns)

    def diagnostics(self) -> tuple[dict[str, str], list[str]]:
        st = self.tracker.state
        values = {
            "mono_estimator": self.name,
            "mono_scale": f"{self.tracker.scale:.5g}" if st else "no fit yet",
            "mono_shift": f"{st.shift:.5g}" if st else "",
            "mono_fit_residual": f"{st.residual:.4f}" if st else "",
            "mono_fits": str(self.n_fits),
            "mono_handover_frames_left": str(self._handover_left),
        }
        if self.last_error:
            values["mono_last_fit_problem"] = self.last_error
        return values, []

    def fit_age_s(self, stamp_ns: int) -> float:
        return self.tracker.age_s(stamp_ns)


def missing_dependency(kind: str, model_dir: str = "") -> str:
    """Why ``kind`` cannot load in this install (empty when its libraries are importable and, for ``mono``, its
    weight files exist); imports nothing heavy, so a lazy load still reports these at start-up."""
    import importlib.util

    def have(mod: str) -> bool:
        return importlib.util.find_spec(mod) is not None

    if kind == MONO:
        if not (have("onnxruntime") or have("torch")):
            return "neither onnxruntime nor torch is installed (depth_nodes[ml])"
        from pathlib import Path

        from depth_nodes.models import registry
        from depth_nodes.mono.own import SHIPPED_DIR

        d = Path(model_dir).expanduser() if model_dir else SHIPPED_DIR
        if not (d / registry.CONFIG_FILE).is_file() or not (d / registry.WEIGHTS_FILE).is_file():
            return f"monocular model directory {d} lacks {registry.CONFIG_FILE} + {registry.WEIGHTS_FILE}"
        return ""
    missing = [m for m in ("torch", "transformers") if not have(m)]
    return f"{' and '.join(missing)} not installed (depth_nodes[ml])" if missing else ""


class GuardedMono:
    """Loads the mono estimator in a background thread: at construction when ``fit_period_frames`` > 0 (guided
    refits), else on the first :meth:`ensure_loaded` (the node leaving guided mode; see the module docstring).
    The worker never waits: torch / onnxruntime are imported off its thread. While not loaded, or when the model
    cannot load (no ``[ml]``, no weights), monocular mode publishes nothing with the reason (``lidar_memory``
    serves memory only); the node carries on."""

    needs_image = True
    needs_lidar = False

    def __init__(
        self, kind: str, opts: MonoOptions, warn: Callable[[str], None], background: bool = True
    ) -> None:
        self.kind = kind
        self.opts = opts
        self._warn = warn
        self.state = "loading"  # standby -> loading -> ready | unavailable
        self.reason = f"monocular estimator {kind!r} still loading"
        self._last_guided = None  # the newest guided frame's inputs (references only): first scale fit
        self.inner: MonoEstimator | None = None
        self._last_stamp_ns = 0
        self._last_K = None
        self._torch_model = None  # a torch copy of the own net for torch_forward (PGD)
        self._lock = threading.Lock()
        self._background = background
        self._runner: LatestJobRunner | None = None  # the net's own thread (background only)
        self._fitting = threading.Lock()  # held while a guided-mode refit runs on its thread
        self.late_published = 0  # estimates published with a later frame (their own image's stamp)
        self._loader: threading.Thread | None = None
        self._background = background
        missing = missing_dependency(kind, opts.model_dir)
        if missing:
            self.state, self.reason = "unavailable", f"monocular estimator {kind!r} unavailable: {missing}"
            warn(self.reason)
        elif self.opts.fit_period_frames > 0 or not background:  # guided refits / offline callers: load now
            self.ensure_loaded()
        else:
            self.state = "standby"
            self.reason = f"monocular estimator {kind!r} not loaded: loads when the node leaves guided mode"

    @property
    def seen_guided(self) -> bool:
        """Whether a guided frame has been seen: the node has left guided mode (not merely started without
        LiDAR yet), and there is a LiDAR frame for the first scale fit."""
        return self._last_guided is not None

    def ensure_loaded(self) -> None:
        """Start loading the model (once; returns at once with ``background``). The pipeline calls it on every
        frame outside guided mode."""
        with self._lock:
            if self.state not in ("standby", "loading") or self._loader is not None:
                return
            self.state, self.reason = "loading", f"monocular estimator {self.kind!r} still loading"
            if self._background:
                self._loader = threading.Thread(target=self._load, name="mono-model-loader", daemon=True)
                self._loader.start()
                return
        self._load()

    def _load(self) -> None:
        try:
            inner = MonoEstimator(load_model(self.kind, self.opts), self.opts)
            first = self._last_guided
            if first is not None and inner.tracker.state is None:  # the last fresh LiDAR: a scale for monocular
                inner._fit(inner._predict(first), first)
        except Exception as exc:  # noqa: BLE001 - an optional model must leave the node running
            why = str(exc) if isinstance(exc, DepthNodesError) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.state, self.reason = (
                    "unavailable",
                    f"monocular estimator {self.kind!r} unavailable: {why}",
                )
            self._warn(self.reason)
            return
        with self._lock:
            if self._background:
                self._runner = LatestJobRunner("mono-infer")
            self.inner, self.state, self.reason = inner, "ready", ""
        log.info("monocular estimator %s ready (%s)", inner.name, getattr(inner.model, "backend", "torch"))

    @property
    def name(self) -> str:
        inner = self.inner
        return inner.name if inner is not None else f"{self.kind} ({self.state})"

    @property
    def torch_forward(self):
        """``(image 0..1, sparse) -> depth`` tensors with gradients (PGD) for the own net, else None: the net's
        own metric scale, at the intrinsics of the last frame estimated (the robustness runner's order). Runs
        a torch copy of the net (the node's may be ONNX Runtime), loaded on first use."""
        import importlib.util

        if self.kind != MONO or importlib.util.find_spec("torch") is None:
            return None

        def forward(image, sparse):
            if self._last_K is None:
                raise EmptyInputError("mono torch_forward: no frame estimated yet (needs its intrinsics)")
            if self._torch_model is None:
                from depth_nodes.mono.own import load_own_model

                self._torch_model = load_own_model(self.opts.model_dir, backend="torch")
            return self._torch_model.torch_forward(image, self._last_K)

        return forward

    def estimate(self, inputs) -> Completion:
        """Monocular mode. In the background (the node): the net runs on its own thread; this frame waits at most
        ``frame_budget_s`` for its estimate, else publishes the newest finished estimate of an earlier frame
        (stamped with that image, each once) or nothing (:mod:`depth_nodes.mono.runner`)."""
        inner = self.inner
        if inner is None:
            raise EmptyInputError(self.reason)
        self._last_stamp_ns = inputs.stamp_ns
        self._last_K = inputs.camera.K
        runner = self._runner
        if runner is None:
            return inner.estimate(inputs)
        key = ("estimate", inputs.stamp_ns)
        runner.submit(key, lambda: inner.estimate(inputs))
        res = runner.wait(key, self.opts.frame_budget_s)
        if res is not None:
            return res.unwrap()  # an EmptyInputError (no scale fit yet) tells this frame why
        late = runner.take_newest("estimate")
        if late is not None and late.ok:
            self.late_published += 1
            late.value.source_stamp_ns = int(late.key[1])
            return late.value
        last = runner.last_seconds
        took = f"{last:.2f} s" if np.isfinite(last) else "not finished yet"
        raise EmptyInputError(f"monocular estimate not ready within mono_frame_budget_s {self.opts.frame_budget_s:g} s "
                              f"(last net run {took}); published with a later frame, stamped with its image")  # fmt: skip

    def observe(self, inputs, guided: Completion) -> Completion:
        """Guided mode. Keeps a reference to the frame (the first fit after a lazy load). A plain scale refit
        (``fit_period_frames`` > 0) runs on a thread of its own (one at a time, frames arriving meanwhile are
        skipped), so guided frames never wait for it and a monocular frame never queues behind it; the handover
        blend (after monocular frames) waits at most ``frame_budget_s`` for the net, else this frame is guided
        alone."""
        self._last_stamp_ns = inputs.stamp_ns
        self._last_guided = inputs
        inner = self.inner
        if inner is None:
            return guided
        runner = self._runner
        if runner is None:
            return inner.observe(inputs, guided)
        if inner._was_mono or inner._handover_left > 0:
            key = ("observe", inputs.stamp_ns)
            runner.submit(key, lambda: inner.observe(inputs, guided))
            res = runner.wait(key, self.opts.frame_budget_s)
            return res.value if res is not None and res.ok else guided
        if self.opts.fit_period_frames > 0 and self._fitting.acquire(blocking=False):
            threading.Thread(target=self._refit, args=(inner, inputs, guided), name="mono-refit", daemon=True).start()
        return guided

    def note_fit(self, fit) -> None:
        """A scale fit made elsewhere on this frame (``lidar_memory``: the carried memory returns) folded into the
        tracker, so ``monocular`` carries it when the memory ages out."""
        inner = self.inner
        if inner is not None and fit is not None and fit.kind == inner.tracker.kind:
            self._last_stamp_ns = max(self._last_stamp_ns, fit.stamp_ns)  # the age in diagnostics
            with inner._lock:
                if inner.tracker.update(fit):
                    inner.n_fits += 1

    def _refit(self, inner: MonoEstimator, inputs, guided: Completion) -> None:
        try:
            inner.observe(inputs, guided)  # never raises on model errors (it records them)
        finally:
            self._fitting.release()

    def close(self, timeout_s: float = 30.0) -> None:
        """Node shutdown: wait for a model load or a net run still going on its thread. A daemon thread inside
        ONNX Runtime / torch native code at interpreter exit aborts the process ("terminate called without an
        active exception"), measured when a node was stopped while the net was still loading."""
        if self._loader is not None:
            self._loader.join(timeout_s)
        runner = self._runner
        if runner is not None:
            runner.close(timeout_s)
        if self._fitting.acquire(timeout=timeout_s):
            self._fitting.release()
        with self._lock:
            self.inner, self.state, self.reason = None, "closed", "node shutting down"

    def diagnostics(self) -> tuple[dict[str, str], list[str]]:
        inner = self.inner
        if inner is None:  # no WARN in guided mode (a classical-only install stays OK); monocular mode: ERROR
            return {"mono_estimator": self.name, "mono_state": self.reason}, []
        values, warnings = inner.diagnostics()
        values["mono_state"] = "ready"
        values["mono_backend"] = str(getattr(inner.model, "backend", "torch"))
        if getattr(inner.model, "device", None):
            values["mono_device"] = str(inner.model.device)
        runner = self._runner
        if runner is not None and np.isfinite(runner.last_seconds):
            values["mono_net_s"] = f"{runner.last_seconds:.3f}"
            values["mono_published_late"] = str(self.late_published)
        age = inner.fit_age_s(self._last_stamp_ns)
        values["mono_fit_age_s"] = f"{age:.2f}" if np.isfinite(age) else "no fit yet"
        values["mono_confidence"] = f"{inner.tracker.confidence(self._last_stamp_ns):.3f}"
        return values, warnings


def create_estimator(kind: str, log: Callable[[str], None] | None = None, **options) -> GuardedMono:
    """Factory of ``mono`` / ``depth_anything_v2`` / ``prompt_depth_anything`` in the pipeline's estimator
    table (options: the node's ``mono_*`` parameters)."""
    known = set(MonoOptions.__dataclass_fields__)
    opts = MonoOptions(**{k[5:]: v for k, v in options.items() if k.startswith("mono_") and k[5:] in known})
    return GuardedMono(kind, opts, log or log_warning, background=bool(options.get("mono_background", True)))


def log_warning(msg: str) -> None:
    log.warning("%s", msg)
