"""Follow a Bliss scan while it is acquired: every frame classified as it lands."""

from __future__ import annotations

import os
from typing import Any, Callable

from ..core.classification.live import watch as watch_events
from ..core.scanfiles.live_feed import open_feed
from .progress import Progress, Workflow


def watch(master: str | os.PathLike, classifier: Any, out: str | os.PathLike | None = None, *,
          scan: str | None = None, follow_next: bool = False, idle_timeout: float | None = None,
          detector: str | None = None, model: str = "", feed: Any = None, redis_url: str | None = None,
          stop: Callable[[], bool] | None = None) -> Workflow[None]:
    """Follow scan ``scan`` (default the first) of the master file ``master`` (and, with
    ``follow_next``, the scans after it) until it ends, ``idle_timeout`` passes or ``stop()``.

    Yields a "frames" :class:`Progress` per frame labelled (done: the frame's acquisition index + 1
    of the frames planned) and a "scans" one when a scan ends, is skipped or the watch goes idle;
    the payload is the core.classification.live.WatchEvent. With ``out`` the predictions of every
    finished scan are written there (equal to ``weakbeam classify``). ``feed``: an open ScanFeed
    (default: one opened here on ``master``, or on blissdata's Redis at ``redis_url``).
    """
    own = feed is None
    if own:
        feed = open_feed(master, idle_timeout=idle_timeout, detector=detector, redis_url=redis_url)
    scans = 0
    try:
        for ev in watch_events(master, classifier, out, scan=scan, follow_next=follow_next,
                               idle_timeout=idle_timeout, detector=detector, model=model, feed=feed, stop=stop):
            if ev.kind == "frame":
                planned = len(ev.layer.label) if ev.layer is not None else 0  # grows past the plan
                yield Progress("frames", ev.index + 1, planned, f"scan {ev.scan} frame {ev.index + 1}", ev)
            else:
                scans += ev.kind == "scan_done"
                yield Progress("scans", scans, 0, f"scan {ev.scan}: {ev.kind.replace('_', ' ')}", ev)
    finally:
        if own:
            feed.close()
