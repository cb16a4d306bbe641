"""`weakbeam demo`: without a display it says so in one line; with one it docks the widgets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_demo_without_display_prints_one_line_and_fails():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(
        [sys.executable, "-m", "napari_weakbeam.cli", "demo"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1
    assert len(out.splitlines()) == 1, out
    assert "display" in out and "scripts/test" in out and "weakbeam classify" in out
    assert "Traceback" not in out


@pytest.mark.gui
def test_demo_layout_docks_the_widgets_on_the_sample(make_napari_viewer):
    from napari.layers import Image, Labels

    from napari_weakbeam._napari._demo import setup_demo

    viewer = make_napari_viewer()
    widgets = setup_demo(viewer, "one_layer", patch_size=64)
    assert {"Annotate", "Train", "Predictions", "Rocking curve", "Reconstruct"} <= set(widgets)
    docked = list(viewer.window.dock_widgets)
    assert len(docked) == 1 and docked[0].startswith("Weak beam (all steps)")  # one dock, as the Plugins menu
    scans = [layer for layer in viewer.layers if isinstance(layer, Image)]
    labels = [layer for layer in viewer.layers if isinstance(layer, Labels)]
    assert scans and labels and labels[0].name == f"{scans[0].name} annotations"
    assert labels[0].data.shape[-2:] == tuple(-(-s // 64) for s in scans[0].data.shape[-2:])
