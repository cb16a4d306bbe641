"""Screenshots of Follow mode for docs/images/: a real writer process replays the bundled sample scan
frame by frame into a Bliss file while napari follows it.

    xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/make_live_screenshots.py [--out docs/images]

Saves ``follow.png`` (the window mid-scan, with the all-steps panel as the Plugins menu docks it:
the live frame, its predictions, the Predict tab's status line and the Rocking curve of a patch
from the frames so far) and ``follow_rocking.png`` (the Rocking curve plot with the weak-beam ranges
shaded). The model is the shipped default (scan-aware) when installed, else the shipped
single-frame model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch  # noqa: F401  (before Qt)

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from make_screenshots import grab, save, settle, wait_until  # noqa: E402
from napari_weakbeam._napari._demo import PANEL  # noqa: E402
from napari_weakbeam._napari._follow import follower_for  # noqa: E402
from napari_weakbeam._napari._session import get_session  # noqa: E402
from napari_weakbeam._napari.sample_data import sample_path  # noqa: E402
from napari_weakbeam.core.classification.modelfile import default_model_path, load_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("docs/images"))
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp())
    live = d / "sample_live.h5"
    writer = subprocess.Popen([sys.executable, "-m", "napari_weakbeam.core.scanfiles.bliss_live_writer",
                               str(sample_path("one_layer.h5")), str(live), "--period", "0.8", "--pause-at", "3:25"],
                              stdout=subprocess.PIPE, text=True)
    for _ in range(3):
        writer.stdout.readline()
    viewer = napari.Viewer(title="napari-weakbeam: Follow")
    screen = QApplication.primaryScreen().availableGeometry()
    viewer.window._qt_window.resize(min(1700, screen.width()), min(1150, screen.height()))
    viewer.open(str(live), plugin="napari-weakbeam")
    _, panel = viewer.window.add_plugin_dock_widget("napari-weakbeam", PANEL)
    widgets = dict(panel.widgets)
    predict, rocking = widgets["Predictions"], widgets["Rocking curve"]
    widgets["Annotate"].start_annotating(viewer.layers[0].name, 32)
    panel.show_step("Predictions")
    session = get_session(viewer)
    model = "default" if default_model_path().exists() else "single-frame"
    session.set_classifier(load_model(model), f"shipped {model} model")
    viewer.layers[0].visible = False
    predict.follow_check.setChecked(True)
    follower = follower_for(session)
    shown = lambda: getattr(follower.last_event, "index", -1)  # noqa: E731
    wait_until(lambda: shown() >= 23, timeout=600)  # well past the peak: ranges on both sides of it
    rocking.show_patch(0, 3, 3)
    settle(1.0)
    save(viewer.screenshot(canvas_only=False, flash=False), a.out / "follow.png")
    save(grab(rocking.canvas), a.out / "follow_rocking.png")
    predict.follow_check.setChecked(False)
    wait_until(lambda: not follower.running, timeout=60)
    writer.wait()
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
