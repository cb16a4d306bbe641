"""Annotate dock widget: paint weak-beam / strong-beam labels on patches of the scan.

The annotation Labels layer lives at patch resolution (one label pixel = one patch), so one brush
dab labels one patch; whole frames with buttons or the keys W, S and C; "Suggest" labels a layer
from each patch's own rocking curve, to accept and correct. What the buttons do: _labelling.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image
from qtpy.QtWidgets import QGroupBox, QLabel, QRadioButton, QWidget

from ..core.errors import WeakbeamError
from ..core.patches import STRONG_BEAM, UNLABELLED, WEAK_BEAM
from ._controls import button, check, column, combo, form, grid, label, on, row, spin, start_worker
from ._dock import tabify_when_docked
from ._files import ask_open_path, ask_save_path
from ._jobs import suggest_job
from . import _labelling as labelling
from ._layers import ROLE_KEY, class_legend
from ._notify import report_errors, set_status, show_info, worker_error_to
from ._pixel import pixel_spin, show_pixel
from ._pixel import set_pixel_size as _set_pixel_size
from ._session import DEFAULT_PATCH_SIZE, get_session

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

H5_FILTER = "Annotations (*.h5 *.hdf5)"


class AnnotateWidget(QWidget):
    """Pick the scan and patch size, paint labels, label whole frames, suggest, save and load."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.session = get_session(viewer)
        tabify_when_docked(self)
        viewer = self.viewer = self.session.viewer
        self._suggest_worker = None
        self._bound: list[Labels] = []  # annotation layers whose keys and brush are wired
        self._saved: np.ndarray | None = None  # the labels as last saved or loaded

        self.scan_combo = combo([], "The Image layer that holds the rocking scan")
        self.patch_spin = spin(4, 1024, DEFAULT_PATCH_SIZE, " px", "Patch size: one label = one P x P patch of the frame")
        self.start_button = button("Start annotating", "Add the patch-resolution annotation layer over the scan",
                                   lambda: self.start_annotating())
        self.pixel_spin = pixel_spin()
        self.pixel_label = label()
        self.contrast_check = check("Auto contrast per frame", self.session.contrast.enabled,
                                    "Rescale the scan's contrast to each frame (tail frames are far darker than the "
                                    "peak); off: napari's own contrast slider")
        self.brush_wb = QRadioButton("WB [1]")
        self.brush_sb = QRadioButton("SB [2]")
        self.brush_wb.setToolTip("Paint weak-beam labels, one patch per dab (the Rocking curve pick mode is left)")
        self.brush_sb.setToolTip("Paint strong-beam labels, one patch per dab")
        self.brush_wb.setChecked(True)
        self.counts_label = label()
        self.legend_label = label(class_legend())
        self.status_label = label()
        self.wb_button = button("WB [W]", "Label every patch of the frame in view weak beam (key W)",
                                lambda: self.label_frame(WEAK_BEAM))
        self.sb_button = button("SB [S]", "Label every patch of the frame in view strong beam (key S)",
                                lambda: self.label_frame(STRONG_BEAM))
        self.clear_button = button("Clear [C]", "Clear the labels of the frame in view (key C)",
                                   lambda: self.label_frame(UNLABELLED))
        self.suggest_button = button("Suggest", "Labels of this layer from each patch's own rocking curve, in a "
                                     "separate layer", lambda: self.suggest())
        self.accept_button = button("Accept", "Copy the suggestions into the unlabelled patches of this layer",
                                    lambda: self.accept_suggestions())
        self.discard_button = button("Discard", "Remove the suggestions layer", lambda: self.discard_suggestions())
        self.save_button = button("Save...", "Save the annotations (HDF5)", lambda: self.save_annotations())
        self.load_button = button("Load...", "Load annotations saved for this scan", lambda: self.load_annotations())

        setup = QGroupBox("Scan")
        column(setup, form(("Scan", self.scan_combo), ("Patch", row(self.patch_spin, self.start_button, stretch=1)),
                           ("Pixel", self.pixel_spin), self.pixel_label), self.contrast_check, stretch=False)
        label_box = QGroupBox("Labels")
        label_box.setLayout(grid(
            (self.legend_label, 0, 0, 1, 3), (QLabel("Paint:"), 1, 0), (self.brush_wb, 1, 1), (self.brush_sb, 1, 2),
            (QLabel("Frame:"), 2, 0, 1, 3), (self.wb_button, 3, 0), (self.sb_button, 3, 1), (self.clear_button, 3, 2),
            (QLabel("Rocking-curve suggestions:"), 4, 0, 1, 3), (self.suggest_button, 5, 0),
            (self.accept_button, 5, 1), (self.discard_button, 5, 2), (self.counts_label, 6, 0, 1, 3),
        ))
        column(self, setup, label_box, row(self.save_button, self.load_button), self.status_label)

        self.contrast_check.toggled.connect(self.session.contrast.set_enabled)
        self.pixel_spin.editingFinished.connect(lambda: self.set_pixel_size(self.pixel_spin.value()))
        self.brush_wb.toggled.connect(lambda on_: on_ and self.set_brush(WEAK_BEAM))
        self.brush_sb.toggled.connect(lambda on_: on_ and self.set_brush(STRONG_BEAM))
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        on(self, self.session.labels_changed, self._update_counts)
        on(self, self.session.scan_changed, self._on_scan_changed)
        viewer.dims.events.current_step.connect(self._update_counts)
        self._refresh_layers()
        self._on_scan_changed()

    # -- scan and layer ----------------------------------------------------------------------
    def _refresh_layers(self, event=None) -> None:
        current = self.scan_combo.currentText()
        scans = [layer for layer in self.viewer.layers
                 if isinstance(layer, Image) and layer.ndim in (3, 4) and ROLE_KEY not in layer.metadata]
        for layer in scans:  # a renamed layer is listed by its new name
            layer.events.name.connect(self._refresh_layers)
        names = [layer.name for layer in scans]
        self.scan_combo.blockSignals(True)
        self.scan_combo.clear()
        self.scan_combo.addItems(names)
        if self.session.scan_layer is not None and self.session.scan_layer.name in names:
            self.scan_combo.setCurrentText(self.session.scan_layer.name)
        elif current in names:
            self.scan_combo.setCurrentText(current)
        self.scan_combo.blockSignals(False)
        self._update_counts()

    @report_errors
    def start_annotating(self, layer_name: str | None = None, patch_size: int | None = None) -> "Labels":
        """Use the chosen Image layer as the scan and add its annotation layer."""
        name = layer_name or self.scan_combo.currentText()
        layer = next((layer for layer in self.viewer.layers if layer.name == name), None)  # the layer itself
        if layer is None:
            raise WeakbeamError(
                "no scan layer: open a scan (File > Open, or File > Open Sample > Weak beam DFXM) first"
            )
        if patch_size is not None:
            self.patch_spin.setValue(int(patch_size))
        return self.session.set_scan_layer(layer, self.patch_spin.value())

    def _on_scan_changed(self) -> None:
        labels = self.session.annotations
        for control in (self.wb_button, self.sb_button, self.clear_button, self.suggest_button, self.save_button,
                        self.accept_button, self.discard_button, self.brush_wb, self.brush_sb):
            control.setEnabled(labels is not None)
        if labels is not None and not any(labels is bound for bound in self._bound):
            labelling.bind_frame_keys(labels, self.session, worker_error_to(self))
            labels.events.selected_label.connect(self._sync_brush)
            self._bound.append(labels)
        if self.session.scan_layer is not None:
            self.scan_combo.setCurrentText(self.session.scan_layer.name)
            self.patch_spin.setValue(self.session.patch_size)
        show_pixel(self.pixel_spin, self.pixel_label, self.session.scan)
        self._update_counts()

    def _update_counts(self, event=None) -> None:
        text = labelling.counts_text(self.session)
        if text is not None:
            self.counts_label.setText(text)

    @report_errors
    def set_pixel_size(self, um: float) -> None:
        """Use ``um`` as the pixel size at the sample (scan, layers, scale bar, reconstruction)."""
        scan = self.session.require_scan()
        if scan.pixel_size and abs(float(scan.pixel_size) - um) < 1e-9:
            return
        _set_pixel_size(self.session, float(um))
        show_pixel(self.pixel_spin, self.pixel_label, scan)
        set_status(self, f"pixel size at the sample set to {um:g} um")

    # -- labelling ----------------------------------------------------------------------------
    def set_brush(self, value: int) -> None:
        """Paint ``value`` (1 = weak beam, 2 = strong beam) with a one-patch brush."""
        labelling.set_brush(self.session, value)

    def _sync_brush(self, event=None) -> None:
        labels = self.session.annotations
        if labels is not None:
            radio = {WEAK_BEAM: self.brush_wb, STRONG_BEAM: self.brush_sb}.get(int(labels.selected_label))
            if radio is not None and not radio.isChecked():
                radio.blockSignals(True)
                radio.setChecked(True)
                radio.blockSignals(False)

    @report_errors
    def label_frame(self, value: int) -> None:
        """Label the whole frame in view: 1 = weak beam, 2 = strong beam, 0 = clear."""
        labelling.label_current_frame(self.session, value)

    @report_errors
    def suggest(self) -> None:
        """Compute rocking-curve suggestions for the layer in view (in a worker thread)."""
        scan = self.session.require_scan()
        if self._suggest_worker is not None:
            return
        layer, _ = self.session.current_index()
        self.suggest_button.setEnabled(False)
        self.suggest_button.setText("Suggesting...")
        set_status(self, f"suggesting labels for layer {layer} from its rocking curves...")
        self._suggest_worker = start_worker(
            self, suggest_job, scan.frames[layer], scan.angles[layer], self.session.patch_size,
            returned=lambda result, layer=layer: self._show_suggestions(layer, result), finished=self._suggest_done)

    def _suggest_done(self) -> None:
        self._suggest_worker = None
        self.suggest_button.setText("Suggest")
        self.suggest_button.setEnabled(self.session.annotations is not None)

    def _show_suggestions(self, layer: int, result: tuple[np.ndarray, int, int]) -> None:
        labels, no_peak, n_patches = result
        self.session.set_suggestions(layer, labels)
        text = labelling.suggestion_summary(layer, labels, no_peak, n_patches, labels.shape[0])
        set_status(self, text)
        show_info(text)

    @report_errors
    def accept_suggestions(self) -> int:
        """Copy suggestions into the unlabelled patches of the layer in view; returns how many."""
        taken, layer = labelling.accept_suggestions(self.session)
        set_status(self, f"accepted {taken} suggested patch labels in layer {layer}")
        return taken

    def discard_suggestions(self) -> None:
        self.session.clear_suggestions()

    # -- files --------------------------------------------------------------------------------
    @report_errors
    def save_annotations(self, path: str | Path | None = None) -> Path | None:
        """Save the labels (atomically) to ``path`` (asks when None)."""
        self.session.require_annotations()
        path = path or ask_save_path(self, "Save annotations", "annotations.h5", H5_FILTER)
        if not path:
            return None
        ann = labelling.save_labels(self.session, path)
        self._saved = np.array(self.session.annotations.data)
        show_info(f"saved {ann.counts()[1]} WB and {ann.counts()[2]} SB patch labels to {path}")
        return Path(path)

    @report_errors
    def load_annotations(self, path: str | Path | None = None) -> None:
        """Load labels saved for this scan; asks first when painted labels not saved would go."""
        self.session.require_scan()
        path = path or ask_open_path(self, "Load annotations", H5_FILTER)
        if not path:
            return
        ann = labelling.read_labels(self.session, path)
        if not labelling.may_replace(self, self.session, self._saved, Path(path).name):
            return
        self.session.set_labels(ann.label)
        self._saved = np.array(self.session.require_annotations().data)
        show_info(f"loaded {ann.counts()[1]} WB and {ann.counts()[2]} SB patch labels from {path}")
