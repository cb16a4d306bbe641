"""Make the screenshots of docs/images/ from a real napari session on the bundled sample scan.

Run it under a virtual display (the window is 1600 x 1000, so give Xvfb a larger screen)::

    xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/make_screenshots.py [--out docs/images]

It does what a scientist does: opens the sample (as ``weakbeam demo``), accepts the rocking-curve
suggestions of the Annotate widget as labels, trains a few epochs from the shipped model with the
Train widget, predicts the whole scan, clicks a patch for its rocking curve, then saves:

* ``overview.png``: the whole window, widgets docked, prediction overlay on a mixed frame;
* ``annotate.png``: the canvas with the painted annotation layer;
* ``predictions.png``: the canvas with the prediction overlay;
* ``train.png``, ``rocking_curve.png``: the Train and Rocking curve widgets.

Every image is checked to be non-blank (mean > 10) before it is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch  # noqa: F401  (before Qt, see docs/napari-notes)

import napari  # noqa: E402
import numpy as np  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from napari_weakbeam._napari._demo import setup_demo  # noqa: E402
from napari_weakbeam._napari._session import get_session  # noqa: E402


def wait_until(condition, timeout: float = 300.0) -> None:
    """Run the Qt event loop until ``condition()`` holds."""
    app = QApplication.instance()
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the widgets did not finish in time")
        app.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() > end)


def save(image: np.ndarray, path: Path) -> None:
    from skimage.io import imsave

    if image.mean() <= 10:
        raise SystemExit(f"{path}: the screenshot is blank (mean {image.mean():.1f})")
    imsave(path, image[..., :3] if image.shape[-1] == 4 else image, check_contrast=False)
    print(f"{path}  {image.shape[1]}x{image.shape[0]}  mean {image.mean():.0f}")


def close_toasts() -> None:
    """Close the notification pop-ups so they do not cover the pictures."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification  # docs script only

    for widget in QApplication.instance().allWidgets():
        if isinstance(widget, NapariQtNotification):
            widget.close()
    settle(0.3)


def grab(widget) -> np.ndarray:
    """A widget's pixels as an (h, w, 4) uint8 array."""
    img = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGBA8888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    return np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[:, : img.width()].copy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer(title="napari-weakbeam")
    screen = QApplication.primaryScreen().availableGeometry()
    viewer.window._qt_window.resize(min(1700, screen.width()), min(1150, screen.height()))
    widgets = setup_demo(viewer, "one_layer", patch_size=32)
    session = get_session(viewer)
    annotate, train, predict, rocking = (widgets[k] for k in ("Annotate", "Train", "Predictions", "Rocking curve"))
    scan = session.require_scan()

    # Annotate: rocking-curve suggestions, accepted, on the tails and the peak of the scan.
    annotate.suggest()
    wait_until(lambda: annotate._suggest_worker is None)
    annotate.accept_suggestions()
    ann = session.annotation_array()
    keep = np.zeros(scan.n_frames, bool)
    keep[[1, 4, 8, 12, 15, 18, 22, 26, 29]] = True  # a scientist labels some frames, not all
    ann[:, ~keep] = 0
    session.require_annotations().refresh()
    session.labels_changed.emit()
    mixed = 15
    viewer.dims.set_current_step(1, mixed)
    viewer.reset_view()
    for name in ("predictions", "probability"):
        layer = getattr(session, name)
        if layer is not None:
            layer.visible = False
    settle(1.0)
    close_toasts()
    save(viewer.screenshot(canvas_only=True, flash=False), args.out / "annotate.png")

    # Train from the shipped model (from scratch when this installation has none).
    from napari_weakbeam.core.modelfile import default_model_path

    train.start_combo.setCurrentText("default model" if default_model_path().exists() else "scratch")
    train.epochs_spin.setValue(args.epochs)
    train.batch_spin.setValue(16)
    wait_until(lambda: train.warmup_worker is None)
    train.start()
    wait_until(lambda: train.worker is None, timeout=900)

    predict.predict_all()
    wait_until(lambda: predict.all_worker is None and predict.frame_worker is None, timeout=900)
    # Show the frame where the model sees both classes most evenly (WB in one region, SB in another).
    pred = np.asarray(session.predictions.data)[0]
    wb = (pred == 1).mean(axis=(1, 2))
    viewer.dims.set_current_step(1, int(np.argmin(np.abs(wb - 0.5))))
    session.predictions.visible = True
    session.annotations.visible = False  # the overlay alone: what the model says
    rows, cols = scan.frame_shape
    rocking.show_patch(0, rows // 64, cols // 64)
    viewer.layers.selection.active = session.predictions
    settle(1.5)
    close_toasts()
    save(viewer.screenshot(canvas_only=True, flash=False), args.out / "predictions.png")
    settle(0.5)
    save(viewer.screenshot(canvas_only=False, flash=False), args.out / "overview.png")
    save(grab(train), args.out / "train.png")
    save(grab(rocking), args.out / "rocking_curve.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
