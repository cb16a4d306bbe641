"""Frames of a Bliss scan while it is acquired, through blissdata's h5py-like API.

Reading (:class:`ScanFeed`, a small Protocol):

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
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from ..errors import WeakbeamError

#: Seconds between re-reads of a file that has not grown (blissdata's retry period).
POLL_S = 0.02


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

    def landed(self, name: str) -> int:
        """How many frames of a started scan have landed (0 when it cannot tell; never waits)."""

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

    def landed(self, name: str) -> int:
        _, angles = self._paths[name]
        group, key = angles.rsplit("/", 1)
        if key not in self._keys(group):  # asking for a missing dataset would wait for it
            return 0
        try:
            return len(self.f[angles])
        except (KeyError, TypeError):
            return 0

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
