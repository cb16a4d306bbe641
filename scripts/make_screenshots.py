"""Make the screenshots of docs/images/ from real napari sessions on the bundled sample scan.

Run it under a virtual display at least as large as the largest window size::

    xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/make_screenshots.py [--out docs/images]

For each window size (default 1280x800 and 1920x1200) it does what a scientist does: opens the
sample and docks the all-steps panel (as ``weakbeam demo`` and the Plugins menu do), accepts the
rocking-curve suggestions as labels, picks a patch for its rocking curve, trains a few epochs from
the shipped model, predicts the whole scan, shows P(weak beam), and reconstructs in 3D. It saves the
whole window at each step (``step<N>-<name>-<W>x<H>.png``) and, from the largest size,
``overview.png`` (README) and close-ups (``annotate.png``, ``predictions.png``, ``train.png``,
``rocking_curve.png``). It fails when a window is taller or wider than its size, when a control
of the panel is cut off, or when an image is blank (mean <= 10).
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


STEPS = ("annotate", "train", "predict", "probability", "reconstruct")


def check_fits(viewer, size: tuple[int, int], panel) -> None:
    """The window is within ``size`` and every control of the visible tab is inside the panel."""
    from qtpy.QtWidgets import QAbstractButton, QComboBox, QScrollArea

    win = viewer.window._qt_window
    if win.frameGeometry().height() > size[1] + 40 or win.width() > size[0]:
        raise SystemExit(f"window {win.width()}x{win.height()} does not fit {size[0]}x{size[1]}")
    area = panel.tabs.currentWidget()
    assert isinstance(area, QScrollArea)
    inner = area.widget()
    for w in inner.findChildren((QAbstractButton, QComboBox)):
        if w.isVisible() and w.geometry().right() > inner.width():
            raise SystemExit(f"{w.text() if hasattr(w, 'text') else w}: cut off on the right at {size}")


def session_at(size: tuple[int, int], out: Path, epochs: int, close_ups: bool) -> None:
    from qtpy.QtWidgets import QDockWidget

    viewer = napari.Viewer(title="napari-weakbeam")
    win = viewer.window._qt_window
    win.resize(*size)
    settle(0.3)
    widgets = setup_demo(viewer, "one_layer", patch_size=32)
    panel = next(d.widget() for d in win.findChildren(QDockWidget) if hasattr(d.widget(), "tabs"))
    win.resize(*size)
    session = get_session(viewer)
    annotate, train, predict, rocking, recon = (
        widgets[k] for k in ("Annotate", "Train", "Predictions", "Rocking curve", "Reconstruct"))
    scan = session.require_scan()
    tag = f"{size[0]}x{size[1]}"

    def shot(step: int, name: str) -> None:
        settle(0.8)
        close_toasts()
        check_fits(viewer, size, panel)
        save(viewer.screenshot(canvas_only=False, flash=False), out / f"step{step}-{name}-{tag}.png")

    # 1. Annotate: rocking-curve suggestions, accepted on some frames; a patch picked.
    annotate.suggest()
    wait_until(lambda: annotate._suggest_worker is None)
    annotate.accept_suggestions()
    ann = session.annotation_array()
    keep = np.zeros(scan.n_frames, bool)
    keep[[1, 4, 8, 12, 15, 18, 22, 26, 29]] = True  # a scientist labels some frames, not all
    ann[:, ~keep] = 0
    session.require_annotations().refresh()
    session.labels_changed.emit()
    viewer.dims.set_current_step(1, 26)  # a tail frame: the dislocations show (per-frame contrast)
    viewer.reset_view()
    rows, cols = scan.frame_shape
    rocking.set_pick_mode(True)
    rocking.show_patch(0, rows // 64, cols // 64)
    shot(1, "annotate")
    if close_ups:
        save(viewer.screenshot(canvas_only=True, flash=False), out / "annotate.png")
    annotate.set_brush(1)  # back to painting

    # 2. Train from the shipped model (from scratch when this installation has none).
    from napari_weakbeam.core.classification.modelfile import default_model_path

    panel.show_step("Train")
    train.start_combo.setCurrentText("default model" if default_model_path().exists() else "scratch")
    train.epochs_spin.setValue(epochs)
    train.batch_spin.setValue(16)
    wait_until(lambda: train.warmup_worker is None)
    train.start()
    wait_until(lambda: train.worker is None, timeout=900)
    shot(2, "train")
    if close_ups:
        save(grab(train), out / "train.png")

    # 3. Predict the whole scan: outlines (predictions) beside filled squares (labels).
    panel.show_step("Predictions")
    predict.predict_all()
    wait_until(lambda: predict.all_worker is None and predict.frame_worker is None, timeout=900)
    pred = np.asarray(session.predictions.data)[0]
    wb = np.where(keep, (pred == 1).mean(axis=(1, 2)), 9.0)
    viewer.dims.set_current_step(1, int(np.argmin(np.abs(wb - 0.5))))  # a mixed frame, labelled too
    rocking.show_patch(0, rows // 64, cols // 64)
    shot(3, "predict")
    if close_ups:
        save(viewer.screenshot(canvas_only=True, flash=False), out / "predictions.png")
        save(viewer.screenshot(canvas_only=False, flash=False), out / "overview.png")
        save(grab(rocking), out / "rocking_curve.png")

    # 4. P(weak beam) with its colour bar.
    session.probability.visible = True
    session.annotations.visible = False
    shot(4, "probability")
    session.probability.visible = False
    session.annotations.visible = True

    # 5. Reconstruct in 3D (physical units, z y x).
    panel.show_step("Reconstruct")
    recon.run()
    wait_until(lambda: recon.worker is None, timeout=900)
    wait_until(lambda: getattr(recon, "surface_worker", None) is None, timeout=300)
    shot(5, "reconstruct")
    viewer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--size", action="append", default=None, help="window size WxH (repeatable)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.size or ["1280x800", "1920x1200"])]
    largest = max(sizes, key=lambda s: s[0] * s[1])
    for size in sizes:
        session_at(size, args.out, args.epochs, close_ups=size == largest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
