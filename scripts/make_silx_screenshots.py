"""Screenshots of our NeXus files opened in silx view (docs/file-formats.md).

Needs silx's GUI (`pip install silx[full]`, or silx and qtawesome). Simulates a small scan,
classifies it and reconstructs it with the `weakbeam` code, then opens the predictions and the
reconstruction in silx view's main window (``silx.app.view``, what `silx view FILE` runs), which
shows each file's default NeXus plot, and saves the window. Run under a virtual display:

    xvfb-run -a -s "-screen 0 1200x800x24" python scripts/make_silx_screenshots.py docs/images

Writes silx_view_predictions.png (moved to frame FRAME with the frame slider) and
silx_view_reconstruction.png (as it opens).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

#: The frame shown for the predictions: on the flank of the rocking curve, where weak and strong
#: beam meet (the first frames, far from the peak, are weak beam everywhere).
FRAME = 5


def make_files(folder: Path) -> dict[str, Path]:
    from napari_weakbeam.cli import main
    from napari_weakbeam.core.classification.modelfile import load_default_model
    from napari_weakbeam.workflows import classify_scan, run
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.simulate import SimulationParams, simulate_to_file

    sim, pred, vol = folder / "sim.h5", folder / "predictions.h5", folder / "reconstruction.h5"
    simulate_to_file(sim, SimulationParams(rows=256, cols=256, layers=4, frames=15, seed=7, density_um2=0.05,
                                           layer_spacing_um=1.0))
    run(classify_scan(open_scan(str(sim)), load_default_model().with_patch_size(16), pred))
    assert main(["reconstruct", str(sim), "-p", str(pred), "--out", str(vol), "-q"]) == 0
    return {"predictions": pred, "reconstruction": vol}


def grab(app, path: Path, out: Path, frame: int | None = None, wait_s: float = 4.0) -> None:
    """Open ``path`` in silx view's main window, as `silx view path` does, let it show the file's
    default plot (at rocking-angle frame ``frame`` when given) and save the window into ``out``."""
    from silx.app.view.main import createWindow
    from silx.gui import qt
    from silx.gui.widgets.FrameBrowser import HorizontalSliderWithBrowser

    settings = qt.QSettings(str(Path(tempfile.mkdtemp()) / "silx-view.ini"), qt.QSettings.IniFormat)
    window = createWindow(None, settings)
    window.resize(1100, 700)
    window.appendFile(str(path))
    window.show()
    _wait(app, wait_s)
    if frame is not None:  # the second slider: the rocking-angle frame of the patch maps
        window.findChildren(HorizontalSliderWithBrowser)[1].setValue(frame)
        _wait(app, 1.0)
    window.grab().save(str(out))
    window.hide()
    _OPEN.append(window)  # closing it here crashes silx's callbacks when it is garbage-collected
    print(f"wrote {out}")


_OPEN: list = []


def _wait(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.05)


def main(out_dir: str) -> None:
    import hdf5plugin  # noqa: F401  (as silx view: compressed datasets)
    from silx.gui import qt

    app = qt.QApplication.instance() or qt.QApplication([])
    out = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        grab(app, files["predictions"], out / "silx_view_predictions.png", frame=FRAME)
        grab(app, files["reconstruction"], out / "silx_view_reconstruction.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
