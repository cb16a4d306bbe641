"""The demo layout: the bundled sample scan with the all-steps panel docked, exactly as the Plugins
menu docks it (used by ``weakbeam demo`` and scripts/make_screenshots.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QWidget

from ._notify import show_warning

if TYPE_CHECKING:
    import napari

PLUGIN = "napari-weakbeam"
PANEL = "Weak beam (all steps)"  # the manifest display name of the one-dock panel


def setup_demo(viewer: "napari.Viewer", sample: str = "one_layer", patch_size: int = 32) -> dict[str, QWidget]:
    """Open the sample scan, dock the all-steps panel (as the Plugins menu does) and start
    annotating; returns the step widgets by name."""
    viewer.open_sample(PLUGIN, sample)
    try:
        _dock, panel = viewer.window.add_plugin_dock_widget(PLUGIN, PANEL)
    except (ImportError, AttributeError, KeyError) as exc:  # a part missing from this installation
        show_warning(f"the weak-beam widgets are not available: {exc}")
        return {}
    widgets: dict[str, QWidget] = dict(panel.widgets)
    annotate = widgets.get("Annotate")
    if annotate is not None:
        from napari.layers import Image

        scans = [layer for layer in viewer.layers if isinstance(layer, Image)]
        if scans:
            from ..core.limits import check_patch_size

            check_patch_size(patch_size, scans[0].data.shape[-2:], option="patch size")  # never clamped silently
            annotate.start_annotating(scans[0].name, patch_size)
    return widgets
