"""The worker bodies of the widgets: each runs in a napari thread worker and calls a workflow
(napari_weakbeam.workflows) or, for a single frame or layer, the core. No Qt here: they yield
workflow Progress events (copies of any live arrays) and return plain results."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..core.errors import WeakbeamError
from ..core.patches import grid_shape
from ..workflows import Progress
from ._models import classifier_for
from ._scan_jobs import predict_in_context
from ._threads import gui_friendly_threads


# -- predictions ----------------------------------------------------------------------------------


def predict_frame_job(scan: Any, layer: int, frame: int, classifier: Any, patch_size: int) -> tuple:
    """Classify one frame -> (layer, frame, label, prob, classifier used).

    It may run beside a training worker: it leaves one core to the GUI thread too."""
    import torch

    torch.set_num_threads(gui_friendly_threads())
    classifier = classifier_for(classifier, patch_size)
    if not np.isfinite(scan.angles[layer, frame]):  # a padding frame of an aborted layer
        gshape = grid_shape(scan.frame_shape, patch_size)
        return layer, frame, np.zeros(gshape, np.uint8), np.full(gshape, np.nan, np.float32), classifier
    label, prob = predict_in_context(scan, layer, frame, classifier)
    return layer, frame, label, prob, classifier


def _copied(ev: Progress) -> Progress:
    """The event with copies of its labels (the workflow fills them in place afterwards)."""
    lab = ev.payload
    return dataclasses.replace(ev, payload=dataclasses.replace(lab, label=lab.label.copy(), prob=lab.prob.copy()))


def predict_all_job(scan: Any, classifier: Any, patch_size: int, scheduler: str = "") -> Iterator[Progress]:
    """Classify every layer: "frames" events per block, "layers" events with the layer's
    self-check (payload: workflows.LayerLabels). With a Dask ``scheduler`` address the layers run
    on its workers and arrive whole, as they finish."""
    from ..core.distribution.distributed import open_client
    from ..workflows import classify_scan

    classifier = classifier_for(classifier, patch_size)
    with open_client(scheduler=scheduler or None) as client:
        for ev in classify_scan(scan, classifier, client=client, self_check=True):
            yield _copied(ev)


def export_job(scan: Any, classifier: Any, patch_size: int, path: str, label: np.ndarray,
               prob: np.ndarray, done: np.ndarray, model: str) -> Iterator[Progress]:
    """Write the predictions file, classifying the layers not fully predicted yet; returns ``path``."""
    from ..workflows import classify_scan

    known = {i: (label[i], prob[i]) for i in range(scan.n_layers) if done[i][scan.valid_frames(i)].all()}
    workflow = classify_scan(scan, classifier_for(classifier, patch_size), path, model=model, known=known)
    for ev in workflow:
        if ev.what == "layers":
            yield dataclasses.replace(ev, payload=None)
    return path


def adapt_job(scan: Any, classifier: Any, patch_size: int, epochs: int = 15) -> Iterator[Progress]:
    """Fine-tune ``classifier`` (None: the shipped default) on the rocking-curve aid's confident
    labels of ``scan``; yields its progress, returns the adapted classifier."""
    from ..core.classification.training import TrainConfig
    from ..workflows import adapt

    start = classifier.with_patch_size(patch_size) if classifier is not None else "default"
    return (yield from adapt(scan, TrainConfig(start=start, patch_size=patch_size, epochs=epochs, device="auto")))


def suggest_job(frames: Any, angles: np.ndarray, patch_size: int) -> tuple[np.ndarray, int, int]:
    """Labels of one layer from its patches' own rocking curves: (suggested labels, patches
    without a usable rocking peak, patches)."""
    from ..core.classification.rocking_aid import curve_offsets, patch_curves
    from ..core.patches import classes_from_u

    angles = np.asarray(angles, dtype=np.float64)
    u = curve_offsets(patch_curves(frames, int(patch_size)), angles)
    no_peak = int(np.count_nonzero(np.all(np.isnan(u), axis=0)))
    return classes_from_u(u), no_peak, int(np.prod(u.shape[1:]))


# -- training -------------------------------------------------------------------------------------


@dataclass
class TrainSettings:
    """Plain settings handed to the training worker (never the widget itself)."""

    epochs: int = 20
    lr: float = 3e-3
    batch_size: int = 32
    start_from: str = "default model"
    model_path: str = ""
    device: str = "auto"
    patch_size: int = 64
    threads: int = 0  # torch threads in the training process; 0 = leave one core for the GUI
    start_model: Any = None  # "current model": the classifier in use (sent to the training process)


def start_value(settings: TrainSettings) -> Any:
    """TrainConfig.start: ``default``, ``scratch``, a model file path or the classifier in use."""
    if settings.start_from == "current model" and settings.start_model is not None:
        return settings.start_model
    if settings.start_from in ("model file", "current model"):
        if not settings.model_path:
            raise WeakbeamError("'start from model file' needs a model file: choose one with Browse")
        return settings.model_path
    return "scratch" if settings.start_from == "scratch" else "default"


def train_job(process: Any, scan: Any, annotations: Any, settings: TrainSettings) -> Iterator[Progress]:
    """Train in ``process`` (a TrainingProcess: the viewer's interpreter stays free) from the
    annotations; yields "batches" and "epochs" events, returns the trained classifier."""
    from ..core.classification.training import TrainConfig
    from ..workflows import train

    config = TrainConfig(patch_size=settings.patch_size, epochs=settings.epochs, lr=settings.lr,
                         batch_size=settings.batch_size, device=settings.device, start=start_value(settings),
                         num_threads=gui_friendly_threads(settings.threads))
    return (yield from train(scan, annotations, config, process=process))


# -- reconstruction -------------------------------------------------------------------------------


@dataclass
class ReconstructResult:
    """What the reconstruction worker returns: the reconstructions and their comparison."""

    auto: Any
    manual: Any = None
    comparison: Any = None  # workflows.Comparison of the automated and manual points, or None
    surfaces: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # name -> (verts, faces), z y x um


def reconstruct_job(scan: Any, source: Any, params: Any, with_manual: bool, tolerance: float,
                    scheduler: str = "", manual_frames: list[int] | None = None,
                    with_surface: bool = False) -> Iterator[Progress]:
    """Reconstruct (and the manual reference, compared, when asked); yields one "layers" count over
    both runs, returns a :class:`ReconstructResult`. With a Dask ``scheduler`` address the layers
    run on its workers (docs/cluster.md). ``manual_frames``: the manual frame per layer (-1: default)."""
    from ..core.distribution.distributed import open_client
    from ..core.reconstruction.surface import surface_mesh
    from ..workflows import compare, reconstruct_scan, run

    runs = [("automated", source, params)]
    if with_manual:
        runs.append(("manual reference", None, dataclasses.replace(params, method="manual")))
    total = scan.n_layers * len(runs)
    done: list[Any] = []
    with open_client(scheduler=scheduler or None) as client:
        for k, (name, labels, p) in enumerate(runs):
            workflow = reconstruct_scan(scan, labels, p, client=client, frames=manual_frames if labels is None else None)
            while True:
                try:
                    ev = next(workflow)
                except StopIteration as stop:
                    done.append(stop.value)
                    break
                yield Progress("layers", k * scan.n_layers + ev.done, total, f"{name}: {ev.message}")
    result = ReconstructResult(done[0], done[1] if with_manual else None)
    if with_manual and len(result.auto.points_um) and len(result.manual.points_um):
        result.comparison = run(compare(result.auto, result.manual, tolerance, names=("automated", "manual")))
    if with_surface:  # marching cubes here, never on the GUI thread (seconds on a real scan)
        result.surfaces = {}
        for name, rec in (("automated", result.auto), ("manual", result.manual)):
            if rec is not None and rec.mask.any():
                result.surfaces[name] = surface_mesh(rec.mask, tuple(rec.voxel_size_um), rec.origin_um)
    return result


# -- live following -------------------------------------------------------------------------------

#: Seconds the follow worker waits for something new before checking whether it was stopped.
POLL_S = 2.0


def follow_job(master: str, classifier: Any, scan: str | None, stop: threading.Event,
               idle_timeout: float | None) -> Iterator[Progress]:
    """Follow a scan (and the next ones) without an output file: the events of workflows.watch."""
    from ..core.scanfiles.live_feed import open_feed
    from ..workflows import watch

    # blissdata waits inside its reads: a feed that gives up after POLL_S keeps Stop prompt; a scan
    # that pauses goes on in the same layer, a scan not started yet is waited for again
    feed = open_feed(master, idle_timeout=POLL_S)
    name = scan
    try:
        while not stop.is_set():
            for ev in watch(master, classifier, None, scan=name, follow_next=True, idle_timeout=idle_timeout,
                            feed=feed, stop=stop.is_set):
                if ev.payload.kind == "idle":
                    name = ev.payload.scan
                    break
                yield ev
            else:
                return
    finally:
        feed.close()
