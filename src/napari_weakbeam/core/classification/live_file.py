"""The followed scan's labels so far, frame by frame, in a small file beside the predictions file.

``weakbeam watch --out PRED.h5`` writes PRED.h5 when a scan ends (then equal to an offline
``weakbeam classify``). While a scan is acquired, ``PRED.live.h5`` holds what is known so far and is
replaced atomically after every frame, so another process (a beamline macro, silx view) always
reads a whole file::

    /live_predictions/label           uint8 (frames so far, grid_rows, grid_cols), acquisition order
    /live_predictions/probability_weak_beam  float32, same shape
    /live_predictions/angles          float64 (frames so far,), degrees
    /live_predictions/weak_beam       float64 (ranges, 2): start, stop (deg) of where weak beam is so
                                      far; attrs sides (low/high), grain_share
    attrs: scan, layer, frames, planned, patch_size, source, updated (unix time)

It is removed when the scan's final predictions are in PRED.h5.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path, check_replaceable

GROUP = "live_predictions"


def live_path(out: str | os.PathLike) -> Path:
    """``PRED.h5`` -> ``PRED.live.h5``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.live{out.suffix or '.h5'}")


class LiveFile:
    """Writes the live file of one watch (checked once: never a file of another kind)."""

    def __init__(self, out: str | os.PathLike, inputs: list[str]):
        self.path = live_path(out)
        check_replaceable(self.path, "live predictions", group=GROUP, inputs=[*inputs, str(out)])

    def write(self, scan: str, layer: Any, weak_beam: Any, source: str = "") -> None:
        """The labels of ``layer`` (a LiveLayer) so far, and where weak beam is, replacing the file."""
        n = layer.n
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as f:
            g = f.create_group(GROUP)
            g["label"] = layer.label[:n]
            g["probability_weak_beam"] = layer.prob[:n]
            g["angles"] = np.asarray(layer.acc.angles[:n], np.float64)
            ranges = [] if weak_beam is None else list(weak_beam.ranges)
            g["weak_beam"] = np.array([[r.start, r.stop] for r in ranges], np.float64).reshape(-1, 2)
            g["weak_beam"].attrs["sides"] = [r.side for r in ranges]
            if weak_beam is not None:
                g["weak_beam"].attrs["grain_share"] = float(weak_beam.grain_share)
            g.attrs.update(scan=scan, layer=int(layer.layer_index), frames=int(n), planned=int(len(layer.label)),
                           patch_size=int(layer.p), source=str(source), updated=time.time())

    def remove(self) -> None:
        """The scan's final predictions are in the predictions file: the live file has done its job."""
        self.path.unlink(missing_ok=True)


def load_live(path: str | os.PathLike) -> dict[str, Any]:
    """The content of a live file: arrays and attributes by name."""
    with h5py.File(path, "r") as f:
        g = f[GROUP]
        out = {k: g[k][()] for k in ("label", "probability_weak_beam", "angles", "weak_beam")}
        out.update({k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()})
    return out
