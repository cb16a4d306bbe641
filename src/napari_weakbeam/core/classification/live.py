"""Follow a Bliss scan while it is acquired: classify each frame as it lands, say where weak beam is.

Frames come from a scan feed (core.scanfiles.live_feed: blissdata's file-based or Redis reader).

Classifying (:class:`LiveLayer`): each new frame is classified at once with the scan-aware
model on the partial rocking curves (the context grows frame by frame); frames seen earlier are
re-classified with the grown context when there is time (:meth:`LiveLayer.refresh`). When the scan
ends, :func:`finish_layers` classifies the finished scan exactly as ``weakbeam classify`` does, so
the file written equals an offline run of the followed scans.
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import WeakbeamError
from ..patches import grid_shape
from ..scanfiles.live_feed import ScanFeed, frames_until_idle, open_feed
from .live_file import LiveFile
from .scan_context import ContextAccumulator, LayerContext

#: Share of the typical gap between frames in which frames seen earlier may be re-classified.
REFRESH_SHARE = 0.5


def freeze_startup_objects() -> None:
    """Put every object alive now (modules, the model, the reader) out of the garbage collector's
    reach, so that its full collections while following stay short: over torch's and blissdata's
    objects one took 0.13-0.17 s, most of a frame's budget (0.04 s after this). For processes that
    only follow (``weakbeam watch``); not for the viewer."""
    import gc

    gc.collect()
    gc.freeze()


def live_threads() -> int:
    """Torch threads for classifying while following: all cores but one (at most 4), so the
    network never waits for a thread that the writer or the viewer has taken (on a loaded 2-core
    machine two threads made a 2048 x 2048 frame several times slower than one)."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


_WARM: "weakref.WeakKeyDictionary[Any, set]" = weakref.WeakKeyDictionary()  # classifier -> frame shapes run
_FAST: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def live_classifier(classifier: Any) -> Any:
    """The classifier used frame by frame: a copy whose network weights are in channels-last
    memory order, which the CPU convolutions run about a quarter faster with and which gives
    bit-identical probabilities (checked in tests/test_live.py); one copy per classifier."""
    import copy

    import torch

    fast = _FAST.get(classifier)
    if fast is None:
        fast = copy.deepcopy(classifier)
        fast.net.to(memory_format=torch.channels_last)
        _FAST[classifier] = fast
    return fast


def warm_up(classifier: Any, frame_shape: tuple[int, int] | None = None) -> None:
    """Run the first frame's path once per classifier before it is needed.

    Without ``frame_shape``: a tiny layer (four small frames, two patches square), before the
    watcher waits for a scan: the first frame's path otherwise pays torch's set-up (0.2-0.3 s on 2
    cores, whatever the frame size) and the imports of the scan context, the predictions and where
    weak beam is (0.6 s measured: dask.array among them). With ``frame_shape``: one frame of that
    size, when a scan has started and no frame has landed yet, so that the first real frame does
    not pay the first-touch work of the size (the network's and the normalisation's: 0.09-0.2 s
    at 2048 x 2048; docs/benchmarks.md, "Live following")."""
    done = _WARM.setdefault(classifier, set())
    key = None if frame_shape is None else tuple(frame_shape)
    if key in done or (key is None and done):
        return
    if key is None:
        side = 2 * int(classifier.patch_size)
        rng = np.random.default_rng(0)
        frames = [rng.poisson(100 + 900 * (i == 2), (side, side)).astype(np.float32) for i in range(4)]
    else:
        frames = [np.zeros(key, np.float32)]
    layer = LiveLayer(classifier, len(frames), frames[0].shape)
    for i, frame in enumerate(frames):
        layer.add(frame, 0.01 * i)
    layer.weak_beam()
    done.add(key)


class LiveLayer:
    """One layer classified frame by frame as it is acquired (frames in acquisition order)."""

    def __init__(self, classifier: Any, planned: int, frame_shape: tuple[int, int], layer_index: int = 0):
        self.clf = classifier
        self.layer_index = layer_index
        self.p = int(classifier.patch_size)
        self.frame_shape = tuple(frame_shape)
        n = max(int(planned), 1)
        self.acc = ContextAccumulator(n, self.frame_shape, self.p)
        g = grid_shape(self.frame_shape, self.p)
        self.label = np.zeros((n,) + g, np.uint8)
        self.prob = np.full((n,) + g, np.nan, np.float32)
        self.n = 0  # frames added
        self.frames: list[np.ndarray] = []
        self.stale: set[int] = set()  # frames classified with an older context
        self.ctx: LayerContext | None = None
        self._costs: list[float] = []  # seconds the last frames took to classify

    @property
    def cost(self) -> float:
        """What classifying one frame costs now: the slowest of the last few (s)."""
        return max(self._costs[-5:], default=0.0)

    def _predict(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        from .predictions import MIN_CONTEXT_FRAMES

        t0 = time.perf_counter()
        aware = getattr(self.clf, "scan_aware", False) and self.n >= MIN_CONTEXT_FRAMES
        lab, pr = self.clf.predict_frames(self.frames[k][None], self.ctx if aware else None, [k])
        self.label[k], self.prob[k] = lab[0], pr[0]
        self._costs = self._costs[-4:] + [time.perf_counter() - t0]
        return lab[0], pr[0]

    def _grow(self) -> None:
        extra = max(self.n, 8)
        pad = lambda a, fill: np.concatenate([a, np.full((extra,) + a.shape[1:], fill, a.dtype)])
        self.acc.curves = pad(self.acc.curves, 0.0)
        self.acc.angles = pad(self.acc.angles, np.nan)
        self.label, self.prob = pad(self.label, 0), pad(self.prob, np.nan)

    def add(self, frame: np.ndarray, angle: float, classify: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Add the next frame and classify it on the curves so far; returns its (label, prob).
        ``classify=False`` only adds it to the curves (a frame the reader is behind on: the newest
        is labelled first, this one by :meth:`refresh`)."""
        frame = np.asarray(frame)
        if frame.shape != self.frame_shape:
            raise WeakbeamError(f"frame {self.n} has shape {frame.shape}, the scan's frames are {self.frame_shape}")
        if self.n >= len(self.label):
            self._grow()
        k = self.n
        self.acc.add(k, frame, angle)
        self.frames.append(frame)
        self.n += 1
        self.stale = set(range(k))
        if not classify:
            self.stale.add(k)
            return self.label[k], self.prob[k]
        self.ctx = self.acc.context()
        return self._predict(k)

    def refresh(self, deadline: float | None = None, stop: Callable[[], bool] | None = None) -> int:
        """Re-classify frames seen earlier with the current context, newest first, while one more
        fits before ``deadline`` (a time.perf_counter() time; None: all) and ``stop()`` is not
        true; returns how many were done."""
        if self.ctx is None or self.n < 3 or not getattr(self.clf, "scan_aware", False):
            return 0
        if len(self.ctx.angles) != len(self.acc.angles) or np.isnan(self.ctx.angles[self.n - 1]):
            self.ctx = self.acc.context()  # frames added without classifying since
        done = 0
        for k in sorted(self.stale, reverse=True):
            if (deadline is not None and time.perf_counter() + self.cost > deadline) or (stop is not None and stop()):
                break
            self._predict(k)
            self.stale.discard(k)
            done += 1
        return done

    def context(self) -> LayerContext | None:
        return self.acc.context() if self.n else None

    def weak_beam(self, layer: int | None = None):
        """Where weak beam is on the curves so far (core.classification.weak_range.LayerWeakBeam), or None."""
        from .weak_range import layer_weak_beam

        ctx = self.ctx  # the context the newest frame was classified with
        layer = self.layer_index if layer is None else layer
        return None if ctx is None else layer_weak_beam(ctx, self.label[: len(ctx.angles)], layer)


@dataclass
class LayerResult:
    """A finished layer as the predictions file stores it (frames sorted by angle)."""

    label: np.ndarray
    prob: np.ndarray
    curves: np.ndarray | None
    levels: np.ndarray | None


def finish_layers(master: str | os.PathLike, scans: list[str], classifier: Any, out: str | os.PathLike | None,
                  done: dict[str, LayerResult], *, detector: str | None = None, model: str = "") -> list:
    """Classify the finished scans not in ``done`` as ``weakbeam classify`` would (adding them to
    ``done``) and write the predictions file ``out`` of all ``scans`` (None: no file); returns the
    weak-beam ranges of every layer (core.classification.weak_range.LayerWeakBeam)."""
    from .predictions import PredictionWriter, classify_layer, load_predictions
    from ..scanfiles.readers import open_scan
    from .predictions import Predictions
    from .weak_range import predictions_weak_beam, store_weak_beam

    scan = open_scan(str(master), scans=scans, detector=detector)
    for layer, name in enumerate(scan.scan_names):
        r = done.get(name)
        if r is None or r.label.shape[0] != scan.n_frames:  # new, or the padding to n_frames changed
            done[name] = LayerResult(*classify_layer(scan, layer, classifier, with_context=True))
    if out is None:
        r = [done[name] for name in scan.scan_names]
        nan = np.full((scan.n_frames,) + r[0].label.shape[1:], np.nan, np.float32)
        pred = Predictions(np.stack([x.label for x in r]), np.stack([x.prob for x in r]), classifier.patch_size,
                           scan.angles, scan.layer_positions,
                           curves=np.stack([nan if x.curves is None else x.curves for x in r]),
                           levels=np.stack([np.full(3, np.nan) if x.levels is None else x.levels for x in r]))
        return predictions_weak_beam(pred) or []
    with PredictionWriter(out, scan, classifier.patch_size, model=model) as writer:
        for layer, name in enumerate(scan.scan_names):
            r = done[name]
            writer.write_layer(layer, r.label, r.prob, r.curves, r.levels)
    results = predictions_weak_beam(load_predictions(out)) or []
    store_weak_beam(out, results, scan.n_layers)
    return results


def resume_results(out: str | os.PathLike, master: str | os.PathLike, patch_size: int) -> dict[str, LayerResult]:
    """Finished layers of an earlier watch of the same scan in ``out`` (empty when there is none)."""
    from .predictions import load_predictions

    if not Path(out).is_file():
        return {}
    pred = load_predictions(out)
    if pred.patch_size != patch_size or Path(pred.source).resolve() != Path(master).resolve():
        raise WeakbeamError(f"{out}: holds predictions of {pred.source} at patch size {pred.patch_size}, not of "
                            f"{master} at {patch_size}; choose another --out")
    found = {}
    for i, name in enumerate(pred.scan_names):
        if pred.layer_done is None or pred.layer_done[i]:
            found[name] = LayerResult(pred.label[i], pred.prob[i],
                                      None if pred.curves is None else pred.curves[i],
                                      None if pred.levels is None else pred.levels[i])
    return found


@dataclass
class WatchEvent:
    """What :func:`watch` reports: a frame classified, or a scan finished."""

    kind: str  # "frame", "scan_done", "skipped", "idle"
    scan: str
    layer: LiveLayer | None = None
    index: int = -1  # acquisition index of the frame
    angle: float = float("nan")
    latency_s: float = float("nan")  # from the frame landing to its label
    weak_beam: Any = None  # LayerWeakBeam (on the frame's partial curves, or of the finished layer)
    results: list = field(default_factory=list)  # scan_done: weak beam of every layer in the file
    final: Any = None  # scan_done: the finished layer's LayerResult (frames sorted by angle)
    deferred: bool = False  # frame: not labelled yet (the reader was behind); refresh labels it later


def next_scan_name(name: str) -> str:
    number = int(name.split(".")[0])
    return f"{number + 1}.1"


def watch(master: str | os.PathLike, classifier: Any, out: str | os.PathLike | None, *, scan: str | None = None,
          follow_next: bool = False, idle_timeout: float | None = None, detector: str | None = None,
          model: str = "", feed: ScanFeed | None = None, refresh: bool = True, threads: int | None = None,
          stop: Callable[[], bool] | None = None) -> Iterator[WatchEvent]:
    """Follow scan ``scan`` (default: the first, ``1.1``) of the Bliss master file ``master``.

    Yields a ``frame`` event per frame classified and a ``scan_done`` event when a scan has ended
    and ``out`` holds its final predictions (equal to ``weakbeam classify``; None: no file); with ``follow_next``
    goes on with the next scans until ``idle_timeout`` passes with nothing new, or ``stop()``.
    Finished scans already in ``out`` are resumed from it, not classified again. While a scan is
    followed, ``PRED.live.h5`` beside ``out`` holds its labels so far, replaced after every frame
    (core.classification.live_file), and removed once ``out`` holds the scan.

    Frames are classified with ``threads`` torch threads (default :func:`live_threads`); the final
    pass of a scan with the threads torch had when called, so its labels and probabilities are
    bit-identical to ``weakbeam classify``. Between frames, with ``refresh``, frames seen earlier are re-classified with the grown context,
    but only in the first REFRESH_SHARE of the typical gap between frames and never once the
    feed has changed, so a new frame does not wait for them.
    """
    import torch

    from ..atomic import check_replaceable

    master = Path(master)
    live_file = None
    if out is not None:
        check_replaceable(out, "predictions", group="predictions", inputs=[str(master)])
        live_file = LiveFile(out, [str(master)])  # the scan so far, frame by frame
    name = scan if scan is None or "." in scan else f"{scan}.1"
    name = name or "1.1"
    done = {} if out is None else resume_results(out, master, classifier.patch_size)
    followed = [n for n in done]
    own = feed is None
    feed = feed or open_feed(master, idle_timeout=idle_timeout, detector=detector)
    offline_threads = torch.get_num_threads()
    torch.set_num_threads(threads or live_threads())
    try:
        warm_up(live_classifier(classifier))  # now, not when the first frame lands
        while True:
            if stop is not None and stop():
                return
            if name in done:
                yield WatchEvent("skipped", name)
            else:
                info = feed.start(name)
                if info is None:
                    if scan is not None and not followed and not follow_next:
                        raise WeakbeamError(f"{master}: scan {name} did not start within {idle_timeout} s")
                    yield WatchEvent("idle", name)
                    return
                if not info.detector:
                    yield WatchEvent("skipped", name)  # no detector: not a layer
                else:
                    layer = LiveLayer(live_classifier(classifier), info.planned, info.frame_shape, len(followed))
                    if feed.landed(name) == 0:  # the scan has started, its first frame not yet
                        warm_up(layer.clf, info.frame_shape)
                    landed: list[float] = []  # when frames the reader was not behind on were seen
                    for fr in frames_until_idle(feed, name, idle_timeout, stop):
                        if stop is not None and stop():
                            return
                        behind = fr.waiting > 0  # newer frames have landed: label the newest first
                        layer.add(fr.frame, fr.angle, classify=not behind)
                        latency = float("nan") if behind else time.perf_counter() - fr.t_landed
                        wb = None if behind else layer.weak_beam()
                        if live_file is not None and not behind:
                            live_file.write(name, layer, wb, str(master))
                        yield WatchEvent("frame", name, layer, fr.index, fr.angle, latency, wb, deferred=behind)
                        if not behind:
                            landed = landed[-5:] + [fr.t_landed]
                        if refresh and not behind and len(landed) >= 3:
                            gap = float(np.median(np.diff(landed)))
                            layer.refresh(fr.t_landed + REFRESH_SHARE * gap, lambda: feed.changed() or bool(stop and stop()))
                    if not feed.finished(name):
                        yield WatchEvent("idle", name, layer)
                        return
                    if layer.n == 0:
                        yield WatchEvent("skipped", name)
                    else:
                        followed.append(name)
                        torch.set_num_threads(offline_threads)  # bit-identical to weakbeam classify
                        try:
                            results = finish_layers(master, followed, classifier, out, done, detector=detector,
                                                    model=model)
                        finally:
                            torch.set_num_threads(threads or live_threads())
                        if live_file is not None:
                            live_file.remove()  # the scan's final labels are in ``out`` now
                        yield WatchEvent("scan_done", name, layer, results=results, final=done[name],
                                         weak_beam=results[followed.index(name)] if len(results) == len(followed) else None)
            if not follow_next:
                return
            name = next_scan_name(name)
    finally:
        torch.set_num_threads(offline_threads)
        if own:
            feed.close()

