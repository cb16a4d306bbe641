"""Annotate dock widget: paint weak-beam / strong-beam labels on patches of the scan.

The annotation Labels layer lives at patch resolution (one label pixel = one patch), so one brush
dab labels one patch. Whole frames are labelled with buttons or the keys W (weak beam), S (strong
beam) and C (clear) while the annotation layer is selected. "Suggest" fills a separate suggestions
layer from each patch's own rocking curve (core.classification.rocking_aid) for the user to accept and correct.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.classification.annotations import load_annotations, save_annotations
from ..core.errors import WeakbeamError
from ..core.patches import STRONG_BEAM, UNLABELLED, WEAK_BEAM
from ._files import ask_open_path, ask_save_path, ask_yes_no
from ._layers import ROLE_KEY, class_legend
from ._notify import report_errors, set_status, show_info, worker_error_to
from ._pixel import pixel_text
from ._pixel import set_pixel_size as _set_pixel_size
from ._dock import tabify_when_docked
from ._session import DEFAULT_PATCH_SIZE, Session, get_session
from .writer import layer_to_annotations

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

#: Keys bound on the annotation layer (none of them is a napari Labels-layer default).
SHORTCUTS = {"W": WEAK_BEAM, "S": STRONG_BEAM, "C": UNLABELLED}
H5_FILTER = "Annotations (*.h5 *.hdf5)"


def label_current_frame(session: Session, value: int) -> None:
    """Label every patch of the frame in view with ``value`` (0 clears it)."""
    layer, frame = session.current_index()
    session.set_frame_labels(layer, frame, value)


def _suggest_job(frames, angles: np.ndarray, patch_size: int) -> tuple[np.ndarray, int, int]:
    """Worker body: (suggested labels, patches without a usable rocking peak, patches)."""
    from ..core.patches import classes_from_u
    from ..core.classification.rocking_aid import curve_offsets, patch_curves

    angles = np.asarray(angles, dtype=np.float64)
    u = curve_offsets(patch_curves(frames, int(patch_size)), angles)
    no_peak = int(np.count_nonzero(np.all(np.isnan(u), axis=0)))
    return classes_from_u(u), no_peak, int(np.prod(u.shape[1:]))


def suggestion_summary(layer: int, labels: np.ndarray, no_peak: int, n_patches: int, n_frames: int) -> str:
    """What Suggest found, and why when it found nothing."""
    n = np.bincount(labels.ravel(), minlength=3)
    if n[1] or n[2]:
        return (f"suggested {n[1]} weak-beam and {n[2]} strong-beam patches in layer {layer}: "
                f"check them, then 'Accept suggestions'")
    if no_peak == n_patches:
        return (f"no suggestion in layer {layer}: none of its {n_patches} patches has a clear rocking peak "
                f"(a peak 8x above the noise that falls to half height within the {n_frames} frames); "
                f"label frames by hand (W / S)")
    return (f"no suggestion in layer {layer}: {no_peak} of {n_patches} patches have no clear rocking peak and "
            f"the others sit between the strong-beam and weak-beam ranges; label frames by hand (W / S)")


class AnnotateWidget(QWidget):
    """Pick the scan and patch size, paint labels, label whole frames, suggest, save and load."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.session = get_session(viewer)
        tabify_when_docked(self)
        viewer = self.viewer = self.session.viewer
        self._suggest_worker = None
        self._bound: set[int] = set()
        self._saved: np.ndarray | None = None  # the labels as last saved or loaded

        self.scan_combo = QComboBox()
        self.scan_combo.setToolTip("The Image layer that holds the rocking scan")
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(4, 1024)
        self.patch_spin.setValue(DEFAULT_PATCH_SIZE)
        self.patch_spin.setSuffix(" px")
        self.patch_spin.setToolTip("Patch size: one label = one P x P patch of the frame")
        self.start_button = QPushButton("Start annotating")
        self.start_button.setToolTip("Add the patch-resolution annotation layer over the scan")
        self.pixel_spin = QDoubleSpinBox()
        self.pixel_spin.setRange(0.0, 1000.0)
        self.pixel_spin.setDecimals(4)
        self.pixel_spin.setSingleStep(0.01)
        self.pixel_spin.setSuffix(" um")
        self.pixel_spin.setSpecialValueText("unknown")
        self.pixel_spin.setToolTip("Pixel size at the sample = camera pixel / objective magnification: "
                                   "sets the scale bar and the 3D reconstruction's micrometres")
        self.pixel_label = QLabel()
        self.pixel_label.setWordWrap(True)
        self.contrast_check = QCheckBox("Auto contrast per frame")
        self.contrast_check.setChecked(self.session.contrast.enabled)
        self.contrast_check.setToolTip("Rescale the scan's contrast to each frame (tail frames are far darker "
                                       "than the peak); off: napari's own contrast slider")

        self.brush_wb = QRadioButton("WB [1]")
        self.brush_sb = QRadioButton("SB [2]")
        self.brush_wb.setToolTip("Paint weak-beam labels, one patch per dab (the Rocking curve pick mode is left)")
        self.brush_sb.setToolTip("Paint strong-beam labels, one patch per dab")
        self.brush_wb.setChecked(True)
        self.counts_label = QLabel()
        self.counts_label.setWordWrap(True)
        self.legend_label = QLabel(class_legend())
        self.legend_label.setWordWrap(True)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)

        self.wb_button = QPushButton("WB [W]")
        self.wb_button.setToolTip("Label every patch of the frame in view weak beam (key W)")
        self.sb_button = QPushButton("SB [S]")
        self.sb_button.setToolTip("Label every patch of the frame in view strong beam (key S)")
        self.clear_button = QPushButton("Clear [C]")
        self.clear_button.setToolTip("Clear the labels of the frame in view (key C)")
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.setToolTip("Labels of this layer from each patch's own rocking curve, in a separate layer")
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Copy the suggestions into the unlabelled patches of this layer")
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Remove the suggestions layer")
        self.save_button = QPushButton("Save...")
        self.save_button.setToolTip("Save the annotations (HDF5)")
        self.load_button = QPushButton("Load...")
        self.load_button.setToolTip("Load annotations saved for this scan")

        form = QFormLayout()
        form.addRow("Scan", self.scan_combo)
        start_row = QHBoxLayout()
        start_row.addWidget(self.patch_spin)
        start_row.addWidget(self.start_button, 1)
        form.addRow("Patch", start_row)
        form.addRow("Pixel", self.pixel_spin)
        form.addRow(self.pixel_label)
        setup = QGroupBox("Scan")
        setup_layout = QVBoxLayout(setup)
        setup_layout.addLayout(form)
        setup_layout.addWidget(self.contrast_check)

        label_box = QGroupBox("Labels")
        grid = QGridLayout(label_box)
        grid.addWidget(self.legend_label, 0, 0, 1, 3)
        grid.addWidget(QLabel("Paint:"), 1, 0)
        grid.addWidget(self.brush_wb, 1, 1)
        grid.addWidget(self.brush_sb, 1, 2)
        grid.addWidget(QLabel("Frame:"), 2, 0, 1, 3)
        grid.addWidget(self.wb_button, 3, 0)
        grid.addWidget(self.sb_button, 3, 1)
        grid.addWidget(self.clear_button, 3, 2)
        grid.addWidget(QLabel("Rocking-curve suggestions:"), 4, 0, 1, 3)
        grid.addWidget(self.suggest_button, 5, 0)
        grid.addWidget(self.accept_button, 5, 1)
        grid.addWidget(self.discard_button, 5, 2)
        grid.addWidget(self.counts_label, 6, 0, 1, 3)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)

        layout = QVBoxLayout(self)
        layout.addWidget(setup)
        layout.addWidget(label_box)
        layout.addLayout(files)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        self.start_button.clicked.connect(lambda: self.start_annotating())
        self.contrast_check.toggled.connect(self.session.contrast.set_enabled)
        self.pixel_spin.editingFinished.connect(lambda: self.set_pixel_size(self.pixel_spin.value()))
        self.brush_wb.toggled.connect(lambda on: on and self.set_brush(WEAK_BEAM))
        self.brush_sb.toggled.connect(lambda on: on and self.set_brush(STRONG_BEAM))
        self.wb_button.clicked.connect(lambda: self.label_frame(WEAK_BEAM))
        self.sb_button.clicked.connect(lambda: self.label_frame(STRONG_BEAM))
        self.clear_button.clicked.connect(lambda: self.label_frame(UNLABELLED))
        self.suggest_button.clicked.connect(lambda: self.suggest())
        self.accept_button.clicked.connect(lambda: self.accept_suggestions())
        self.discard_button.clicked.connect(lambda: self.discard_suggestions())
        self.save_button.clicked.connect(lambda: self.save_annotations())
        self.load_button.clicked.connect(lambda: self.load_annotations())

        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        self.session.labels_changed.connect(self._update_counts)
        self.session.scan_changed.connect(self._on_scan_changed)
        viewer.dims.events.current_step.connect(self._update_counts)
        self._refresh_layers()
        self._on_scan_changed()

    # -- scan and layer ----------------------------------------------------------------------
    def _refresh_layers(self, event=None) -> None:
        current = self.scan_combo.currentText()
        names = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Image) and layer.ndim in (3, 4) and ROLE_KEY not in layer.metadata
        ]
        self.scan_combo.blockSignals(True)
        self.scan_combo.clear()
        self.scan_combo.addItems(names)
        if current in names:
            self.scan_combo.setCurrentText(current)
        self.scan_combo.blockSignals(False)
        self._update_counts()

    @report_errors
    def start_annotating(self, layer_name: str | None = None, patch_size: int | None = None) -> "Labels":
        """Use the chosen Image layer as the scan and add its annotation layer."""
        name = layer_name or self.scan_combo.currentText()
        if not name or name not in self.viewer.layers:
            raise WeakbeamError(
                "no scan layer: open a scan (File > Open, or File > Open Sample > Weak beam DFXM) first"
            )
        if patch_size is not None:
            self.patch_spin.setValue(int(patch_size))
        labels = self.session.set_scan_layer(self.viewer.layers[name], self.patch_spin.value())
        return labels

    def _on_scan_changed(self) -> None:
        labels = self.session.annotations
        has = labels is not None
        for button in (self.wb_button, self.sb_button, self.clear_button, self.suggest_button,
                       self.save_button, self.accept_button, self.discard_button, self.brush_wb,
                       self.brush_sb):
            button.setEnabled(has)
        if has and id(labels) not in self._bound:
            self._bind_keys(labels)
            labels.events.selected_label.connect(self._sync_brush)
            self._bound.add(id(labels))
        if self.session.scan_layer is not None:
            self.scan_combo.setCurrentText(self.session.scan_layer.name)
            self.patch_spin.setValue(self.session.patch_size)
        self._show_pixel()
        self._update_counts()

    def _bind_keys(self, labels: "Labels") -> None:
        session = self.session
        for key, value in SHORTCUTS.items():

            def handler(layer, value=value):
                try:
                    label_current_frame(session, value)
                except WeakbeamError as exc:
                    worker_error_to(self)(exc)

            labels.bind_key(key, handler, overwrite=True)

    def _update_counts(self, event=None) -> None:
        labels = self.session.annotations
        if labels is None:
            self.counts_label.setText("No annotation layer yet: pick the scan and press Start.")
            return
        total = self.session.counts()
        try:
            layer, frame = self.session.current_index()
            here = np.bincount(self.session.annotation_array()[layer, frame].ravel(), minlength=3)
        except WeakbeamError:
            return
        self.counts_label.setText(
            f"Labelled patches: <b>{total[1]}</b> weak beam, <b>{total[2]}</b> strong beam"
            f"<br>This frame (layer {layer}, frame {frame}): {here[1]} WB, {here[2]} SB"
        )

    def _show_pixel(self) -> None:
        scan = self.session.scan
        self.pixel_spin.setEnabled(scan is not None)
        self.pixel_spin.blockSignals(True)
        self.pixel_spin.setValue(float(scan.pixel_size) if scan is not None and scan.pixel_size else 0.0)
        self.pixel_spin.blockSignals(False)
        self.pixel_label.setText(pixel_text(scan) if scan is not None else "")

    @report_errors
    def set_pixel_size(self, um: float) -> None:
        """Use ``um`` as the pixel size at the sample (scan, layers, scale bar, reconstruction)."""
        scan = self.session.require_scan()
        if scan.pixel_size and abs(float(scan.pixel_size) - um) < 1e-9:
            return
        _set_pixel_size(self.session, float(um))
        self._show_pixel()
        set_status(self, f"pixel size at the sample set to {um:g} um")

    # -- labelling ----------------------------------------------------------------------------
    def set_brush(self, value: int) -> None:
        """Paint ``value`` (1 = weak beam, 2 = strong beam) with a one-patch brush."""
        labels = self.session.annotations
        if labels is None:
            return
        labels.selected_label = value
        labels.brush_size = 1
        labels.mode = "paint"
        self.viewer.layers.selection.active = labels

    def _sync_brush(self, event=None) -> None:
        labels = self.session.annotations
        if labels is not None:
            button = {WEAK_BEAM: self.brush_wb, STRONG_BEAM: self.brush_sb}.get(int(labels.selected_label))
            if button is not None and not button.isChecked():
                button.blockSignals(True)
                button.setChecked(True)
                button.blockSignals(False)

    @report_errors
    def label_frame(self, value: int) -> None:
        """Label the whole frame in view: 1 = weak beam, 2 = strong beam, 0 = clear."""
        label_current_frame(self.session, value)

    @report_errors
    def suggest(self) -> None:
        """Compute rocking-curve suggestions for the layer in view (in a worker thread)."""
        scan = self.session.require_scan()
        if self._suggest_worker is not None:
            return
        layer, _ = self.session.current_index()
        worker = create_worker(_suggest_job, scan.frames[layer], scan.angles[layer], self.session.patch_size)
        worker.returned.connect(lambda result, layer=layer: self._show_suggestions(layer, result))
        worker.errored.connect(worker_error_to(self))
        worker.finished.connect(self._suggest_done)
        self.suggest_button.setEnabled(False)
        self.suggest_button.setText("Suggesting...")
        set_status(self, f"suggesting labels for layer {layer} from its rocking curves...")
        self._suggest_worker = worker
        worker.start()

    def _suggest_done(self) -> None:
        self._suggest_worker = None
        self.suggest_button.setText("Suggest")
        self.suggest_button.setEnabled(self.session.annotations is not None)

    def _show_suggestions(self, layer: int, result: tuple[np.ndarray, int, int]) -> None:
        labels, no_peak, n_patches = result
        self.session.set_suggestions(layer, labels)
        text = suggestion_summary(layer, labels, no_peak, n_patches, labels.shape[0])
        set_status(self, text)
        show_info(text)

    @report_errors
    def accept_suggestions(self) -> int:
        """Copy suggestions into the unlabelled patches of the layer in view; returns how many."""
        suggestions = self.session.suggestions
        if suggestions is None:
            raise WeakbeamError("no suggestions yet: press 'Suggest' first")
        layer, _ = self.session.current_index()
        ann = self.session.annotation_array()[layer]
        sug = suggestions.data.reshape((-1,) + suggestions.data.shape[-3:])[layer]
        taken = 0
        labels = self.session.require_annotations()
        with labels.block_history():  # one undo step for the whole layer
            for frame in range(ann.shape[0]):
                take = (ann[frame] == 0) & (sug[frame] != 0)
                if take.any():
                    taken += self.session.set_frame_labels(layer, frame, sug[frame], where=take)
        self.discard_suggestions()
        set_status(self, f"accepted {taken} suggested patch labels in layer {layer}")
        return taken

    def discard_suggestions(self) -> None:
        self.session.clear_suggestions()

    # -- files --------------------------------------------------------------------------------
    @report_errors
    def save_annotations(self, path: str | Path | None = None) -> Path | None:
        """Save the labels (atomically) to ``path`` (asks when None)."""
        labels = self.session.require_annotations()
        if path is None:
            path = ask_save_path(self, "Save annotations", "annotations.h5", H5_FILTER)
            if not path:
                return None
        ann = layer_to_annotations(labels.data, labels.metadata)
        save_annotations(path, ann)
        self._saved = np.array(labels.data)
        show_info(f"saved {ann.counts()[1]} WB and {ann.counts()[2]} SB patch labels to {path}")
        return Path(path)

    def _may_replace_labels(self, name: str) -> bool:
        """Loading replaces the painted labels: ask first when some were painted since the last
        save or load (an unsaved afternoon of labelling must not vanish with one click)."""
        current = self.session.annotations
        if current is None or not np.any(current.data):
            return True
        if self._saved is not None and self._saved.shape == current.data.shape and np.array_equal(self._saved, current.data):
            return True
        n = int(np.count_nonzero(current.data))
        return ask_yes_no(self, "Load annotations",
                          f"Replace the {n} painted patch labels, not saved since they changed, with those of {name}?")

    @report_errors
    def load_annotations(self, path: str | Path | None = None) -> None:
        """Load labels saved for this scan (a file made for another scan is refused)."""
        scan = self.session.require_scan()
        if path is None:
            path = ask_open_path(self, "Load annotations", H5_FILTER)
            if not path:
                return
        ann = load_annotations(path)
        ann.check_matches(scan, what=f"annotations {Path(path).name}")
        if ann.patch_size != self.session.patch_size:
            assert self.session.scan_layer is not None
            current = self.session.annotations
            if current is not None and not np.any(current.data):
                self.viewer.layers.remove(current)
            self.session.set_scan_layer(self.session.scan_layer, ann.patch_size)
        if not self._may_replace_labels(Path(path).name):
            return
        self.session.set_labels(ann.label)
        self._saved = np.array(self.session.require_annotations().data)
        show_info(f"loaded {ann.counts()[1]} WB and {ann.counts()[2]} SB patch labels from {path}")
