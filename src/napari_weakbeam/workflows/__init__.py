"""One function per user action, shared by the command line, the napari widgets and the benchmarks.

Each is a generator that yields :class:`Progress` events and returns its result; closing it
cancels the work (what it has finished stays where it says). :func:`run` drives one to its end::

    from napari_weakbeam.workflows import classify_scan, run
    run(classify_scan(scan, classifier, "pred.h5"), print)

* :func:`classify_scan` - label every patch of every frame (a predictions file, or in memory);
* :func:`train` / :func:`adapt` - train or fine-tune from labels; adapt with no painting;
* :func:`reconstruct_scan` - the 3D reconstruction (a reconstruction file, or in memory);
* :func:`compare` - two reconstructions, or one and a simulation's truth;
* :func:`simulate` - a synthetic scan with ground truth;
* :func:`watch` - follow a scan while it is acquired.

Whole-scan work takes ``client=None`` (this process) or a Dask client whose workers take whole
layers; the results are the same, bit for bit.
"""

from .progress import Progress, Workflow, run

# The rest load on first use (PEP 562), so `weakbeam simulate` never imports torch.
_WHERE = {
    "LayerLabels": "classification", "classify_scan": "classification", "Comparison": "comparison",
    "compare": "comparison", "reconstruct_scan": "reconstruction", "simulate": "simulation", "adapt": "training",
    "run_trainer": "training", "train": "training", "watch": "following",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Progress", "Workflow", "run", *_WHERE]
