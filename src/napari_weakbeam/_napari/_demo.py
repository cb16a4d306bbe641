"""The demo layout: the bundled sample scan with the weak-beam widgets docked (used by
``weakbeam demo`` and scripts/make_screenshots.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QWidget

from ._notify import show_warning

if TYPE_CHECKING:
    import napari

PLUGIN = "napari-weakbeam"
# (manifest display name, dock area): the daily loop on the right, the plot on the left.
DOCKS = (
    ("Annotate", "right"),
    ("Train", "right"),
    ("Predictions", "right"),
    ("Reconstruct", "left"),
    ("Rocking curve", "left"),
)
TABBED = ("Rocking curve",)  # shares the left area with Reconstruct, in front


def _widget_class(name: str) -> type[QWidget]:
    import importlib

    module = {
        "Annotate": ("annotate_widget", "AnnotateWidget"),
        "Train": ("train_widget", "TrainWidget"),
        "Predictions": ("predict_widget", "PredictWidget"),
        "Rocking curve": ("rocking_widget", "RockingCurveWidget"),
        "Reconstruct": ("reconstruct_widget", "ReconstructWidget"),
    }[name]
    return getattr(importlib.import_module(f"napari_weakbeam._napari.{module[0]}"), module[1])


def setup_demo(viewer: "napari.Viewer", sample: str = "one_layer", patch_size: int = 32) -> dict[str, QWidget]:
    """Open the sample scan, dock the widgets and start annotating; returns the widgets by name."""
    viewer.open_sample(PLUGIN, sample)
    widgets: dict[str, QWidget] = {}
    placed: dict[str, bool] = {}
    for name, area in DOCKS:
        try:
            widget = _widget_class(name)(viewer)
        except (ImportError, AttributeError) as exc:  # a part missing from this installation
            show_warning(f"the {name} widget is not available: {exc}")
            continue
        tabify = placed.get(area, False) and name in TABBED
        viewer.window.add_dock_widget(widget, name=name, area=area, tabify=tabify)
        placed[area] = True
        widgets[name] = widget
    annotate = widgets.get("Annotate")
    if annotate is not None:
        from napari.layers import Image

        scans = [layer for layer in viewer.layers if isinstance(layer, Image)]
        if scans:
            from ..core.limits import check_patch_size

            check_patch_size(patch_size, scans[0].data.shape[-2:], option="patch size")  # never clamped silently
            annotate.start_annotating(scans[0].name, patch_size)
    return widgets
