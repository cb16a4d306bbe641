"""Follow a Bliss scan while it is acquired: classify each frame as it lands, say where weak beam is.

Reading (:class:`ScanFeed`, a small Protocol) goes through blissdata's h5py-like API:

* :class:`BlissFeed` with ``dynamic_hdf5.File`` (file-based, no Redis): the master file another
  process is writing is re-opened whenever a read fails or a dataset may still grow, and a scan
  is finished when its ``end_time`` is written (Bliss writes it for aborted scans too);
* the same class over ``redis_hdf5.File`` (``open_feed(path, redis_url=...)``) for beamlines that
  run blissdata's Redis data store: frames come from the scan's Redis streams, scans are waited
  for by asking again every POLL_S; the final pass still reads the master file Bliss writes.
  Tested (tests/test_live_redis.py) against a real server with the RedisJSON and RediSearch
  modules that blissdata's DataStore needs, the scan published through blissdata's own scan API.

A frame counts as landed once its rocking-motor position is written (Bliss writes the position
channel with the image; the project's live writer writes it after the image), so a half-written
last frame is never read.

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
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from ..errors import WeakbeamError
from ..patches import grid_shape
from .live_file import LiveFile
from .scan_context import ContextAccumulator, LayerContext

#: Seconds between re-reads of a file that has not grown (blissdata's retry period).
POLL_S = 0.02
#: Share of the typical gap between frames in which frames seen earlier may be re-classified.
REFRESH_SHARE = 0.5


@dataclass
class LiveFrame:
    """One frame as it landed: its index in acquisition order, the frame, its rocking angle."""

    index: int
    frame: np.ndarray
    angle: float
    t_landed: float  # time.perf_counter() when the reader saw it
    waiting: int = 0  # frames already landed after this one (the reader is behind by that many)


@dataclass
class ScanStart:
    """What is known of a scan when it starts: where its frames and angles are, and its plan."""

    name: str
    detector: str
    planned: int  # npoints (0: unknown)
    frame_shape: tuple[int, int]


class ScanFeed(Protocol):
    """Where the frames of scans being acquired come from."""

    def start(self, name: str) -> ScanStart | None:
        """Wait for scan ``name`` to start; None when it does not come within the idle timeout
        (``detector`` is "" for a scan without images)."""

    def frames(self, name: str, start: int = 0) -> Iterator[LiveFrame]:
        """Frames of ``name`` from index ``start`` as they land; ends when the scan ends (or after
        the idle timeout with no new frame)."""

    def finished(self, name: str) -> bool:
        """Whether the scan has ended (its ``end_time`` is written)."""

    def changed(self) -> bool:
        """Whether something new may have landed since the last frame was read (cheap; False
        when the feed cannot tell)."""

    def close(self) -> None: ...


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return _text(v.reshape(-1)[0]) if v.size else ""
    return str(v)


class BlissFeed:
    """A :class:`ScanFeed` over a blissdata h5py-like ``File`` (dynamic HDF5 or Redis)."""

    def __init__(self, file: Any, detector: str | None = None, source: str = "", path: str | None = None,
                 idle_timeout: float | None = None):
        self.f = file
        self.idle_timeout = idle_timeout
        self.detector = detector
        self.source = source
        self.path = path  # the file being written (None: not a file, e.g. Redis)
        self._paths: dict[str, tuple[str, str]] = {}
        self._seen: tuple[int, int] | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)  # type: ignore[arg-type]
        except (OSError, TypeError):
            return None
        return st.st_mtime_ns, st.st_size

    def changed(self) -> bool:
        """Whether the master file was written since the last frame was read (the writer flushes
        every frame, so a new frame changes its time or size)."""
        return self.path is not None and self._seen is not None and self._stat() != self._seen

    def _keys(self, path: str) -> list[str]:
        try:
            return list(self.f[path])
        except (KeyError, IndexError):
            return []

    def start(self, name: str) -> ScanStart | None:
        t0 = time.perf_counter()
        while True:  # dynamic_hdf5 waits inside the lookup; Redis answers at once, so ask again
            try:
                self.f[name]
                break
            except KeyError:
                if self.path is not None or (self.idle_timeout is not None
                                             and time.perf_counter() - t0 >= self.idle_timeout):
                    return None
                time.sleep(POLL_S)
        inst = f"{name}/instrument"
        dets = []
        for key in self._keys(inst):
            node = self.f[f"{inst}/{key}"]
            if _text(node.attrs.get("NX_class", "") if hasattr(node.attrs, "get") else "") == "NXdetector" \
                    and "data" in self._keys(f"{inst}/{key}"):
                dets.append(key)
        if self.detector is not None:
            if self.detector not in dets:
                raise WeakbeamError(f"{self.source}: scan {name} has no detector {self.detector!r} "
                                    f"(detectors there: {', '.join(dets) or 'none'})")
            dets = [self.detector]
        if not dets:
            return ScanStart(name, "", 0, (0, 0))  # not an imaging scan (e.g. a counter scan between layers)
        motor, planned = self._plan(name)
        if motor is None:
            raise WeakbeamError(f"{self.source}: scan {name} names no rocking motor (no fscan_parameters/motor "
                                "and no motor in its title)")
        angles = f"{name}/measurement/{motor}"
        if motor not in self._keys(f"{name}/measurement"):
            angles = f"{inst}/{motor}/value"
        data = f"{inst}/{dets[0]}/data"
        shape = tuple(int(s) for s in self.f[data].shape[1:])
        self._paths[name] = (data, angles)
        return ScanStart(name, dets[0], planned, shape)  # type: ignore[arg-type]

    def _plan(self, name: str) -> tuple[str | None, int]:
        """(rocking motor, planned frames) from ``fscan_parameters``, else from the scan's title
        (``ascan diffry 10.2 10.4 30 0.5``: 31 points); 0 frames when unknown."""
        inst = f"{name}/instrument"
        if "fscan_parameters" in self._keys(inst):
            fp = f"{inst}/fscan_parameters"
            keys = self._keys(fp)
            motor = _text(self.f[f"{fp}/motor"][()]) if "motor" in keys else None
            planned = int(np.asarray(self.f[f"{fp}/npoints"][()]).reshape(-1)[0]) if "npoints" in keys else 0
            if motor:
                return motor, planned
        title = _text(self.f[f"{name}/title"][()]).split() if "title" in self._keys(name) else []
        if len(title) < 2:
            return None, 0
        try:
            planned = int(title[4]) + (0 if title[0] == "fscan" else 1) if len(title) >= 5 else 0
        except ValueError:
            planned = 0
        return title[1], planned

    def frames(self, name: str, start: int = 0) -> Iterator[LiveFrame]:
        data, angles = self._paths[name]
        ds, pos = self.f[data], self.f[angles]
        if self.path is None:
            yield from self._stream_frames(name, ds, pos, start)
            return
        for k, angle in enumerate(pos):
            if k < start:
                continue
            self._seen = self._stat() if self.path is not None else None
            frame = np.asarray(ds[k])
            try:
                waiting = max(len(pos) - 1 - k, 0)  # the length as of the file's last re-open
            except (KeyError, TypeError):
                waiting = 0
            yield LiveFrame(k, frame, float(np.asarray(angle).reshape(-1)[0]), time.perf_counter(), waiting)

    def _stream_frames(self, name: str, ds: Any, pos: Any, k: int) -> Iterator[LiveFrame]:
        """Frames from Redis streams: a frame has landed once both its position and its image are
        there (blissdata's own iteration would block until the stream ends, and its item reads
        retry every 0.5 s); returns when ``idle_timeout`` passes with nothing new, or the scan ends.
        The image stream's length is asked only once a new position is there: blissdata reads a
        stream's length from its last entry, a whole frame for an image stream."""
        last = time.perf_counter()
        while True:
            n = len(pos)
            if k < n and k < len(ds):
                yield LiveFrame(k, np.asarray(ds[k]), float(np.asarray(pos[k]).reshape(-1)[0]), time.perf_counter(),
                                n - 1 - k)
                k, last = k + 1, time.perf_counter()
            elif self.finished(name) and k >= min(len(pos), len(ds)):  # sealed: nothing more comes
                return
            elif self.idle_timeout is not None and time.perf_counter() - last >= self.idle_timeout:
                return
            else:
                time.sleep(POLL_S)

    def finished(self, name: str) -> bool:
        return "end_time" in self._keys(name)

    def close(self) -> None:
        self.f.close()


def resp2_url(url: str) -> str:
    """``url`` with ``protocol=2``: blissdata (2.4) parses its RediSearch answers as RESP2 lists, and
    redis-py 8 speaks RESP3 by default (its answers are then dicts, and every scan lookup fails)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("protocol", "2")
    return urlunsplit(parts._replace(query=urlencode(query)))


def open_feed(path: str | os.PathLike, *, idle_timeout: float | None = None, detector: str | None = None,
              redis_url: str | None = None) -> BlissFeed:
    """A feed of the Bliss master file ``path``: file-based (blissdata ``dynamic_hdf5``) by default,
    or blissdata's Redis data store at ``redis_url`` (``redis://host:port``), where Bliss files its
    scans under the master file's absolute path."""
    try:
        if redis_url:
            from blissdata.h5api import redis_hdf5
            from blissdata.redis_engine.store import DataStore
            from redis.exceptions import RedisError

            try:
                f = redis_hdf5.File(os.path.abspath(path), data_store=DataStore(resp2_url(redis_url)))
            except (RedisError, RuntimeError, ValueError) as exc:  # unreachable, or no blissdata store there
                raise WeakbeamError(f"cannot read blissdata's Redis data store at {redis_url}: {exc}") from None
        else:
            from blissdata.h5api import dynamic_hdf5

            f = dynamic_hdf5.File(str(path), retry_timeout=idle_timeout, retry_period=POLL_S)
    except ImportError:
        raise WeakbeamError("following a scan needs blissdata: pip install blissdata") from None
    return BlissFeed(f, detector, str(path), None if redis_url else str(path), idle_timeout)


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


_WARM: "weakref.WeakSet[Any]" = weakref.WeakSet()  # classifiers whose network has run once
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


def warm_up(classifier: Any) -> None:
    """Follow a tiny layer (four small frames, two patches square) once per classifier, before the
    watcher waits for a scan: the first frame's path otherwise pays torch's set-up (0.2-0.3 s on 2
    cores, whatever the frame size) and the imports of the scan context, the predictions and where
    weak beam is (0.6 s measured: dask.array among them), after which the first 2048 x 2048 frame
    of a scan costs what any other does (docs/benchmarks.md, "Live following")."""
    if classifier not in _WARM:
        side = 2 * int(classifier.patch_size)
        layer = LiveLayer(classifier, 4, (side, side))
        rng = np.random.default_rng(0)
        for i in range(4):
            layer.add(rng.poisson(100 + 900 * (i == 2), (side, side)).astype(np.float32), 0.01 * i)
        layer.weak_beam()
        _WARM.add(classifier)


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


def frames_until_idle(feed: ScanFeed, name: str, idle_timeout: float | None,
                      stop: Callable[[], bool] | None = None) -> Iterator[LiveFrame]:
    """The frames of scan ``name`` until it ends, ``idle_timeout`` seconds pass with no new frame
    (None: never), or ``stop()``. The feed may give up waiting sooner (its own timeout, short
    so that Stop is prompt): its frames then go on from where they stopped, in the same layer."""
    last, k = time.perf_counter(), 0
    while True:
        for fr in feed.frames(name, k):
            yield fr
            k, last = fr.index + 1, time.perf_counter()
        if feed.finished(name) or (stop is not None and stop()) or (
                idle_timeout is not None and time.perf_counter() - last >= idle_timeout):
            return


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

