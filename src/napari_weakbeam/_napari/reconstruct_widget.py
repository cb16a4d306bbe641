"""Reconstruct dock widget: 3D dislocations from the weak-beam data of the whole scan.

Runs the reconstruction workflow (napari_weakbeam.workflows.reconstruct_scan, and optionally the
manual reference) layer by layer in a worker (_jobs.reconstruct_job) with progress, then shows the result in 3D with the
physical voxel size (_reconstruction_view.py): automated in magenta, manual in cyan, with the
histogram of the distances between the two; exports to HDF5, TIFF and point clouds (.vtk/.csv).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QProgressBar, QWidget

from ..core.errors import WeakbeamError
from ..core.reconstruction.compare import default_tolerance
from ._controls import button, check, column, combo, float_spin, form, grid, label, line_edit, on, start_worker
from ._dock import tabify_when_docked
from ._files import ask_save_path
from ._geometry import follow_frame
from ._jobs import ReconstructResult, reconstruct_job
from ._notify import report_errors, show_info
from ._plot import PlotCanvas
from ._reconstruct_inputs import (DRIFT_FROM_LINES, LABEL_SOURCES, drift_box, drift_reference_choices, label_source,
                                  scan_layer, scan_to_reconstruct)
from ._reconstruction_view import our_layers, plot_distances, show_result
from ._session import get_session

if TYPE_CHECKING:
    import napari

EXPORT_FILTERS = {"h5": "Reconstruction (*.h5)", "tif": "TIFF stack (*.tif)",
                  "points": "ParaView point cloud (*.vtk);;ParaView XDMF point cloud (*.xdmf);;CSV points (*.csv)"}


class ReconstructWidget(QWidget):
    """Run the 3D reconstruction of the whole scan and show it in 3D."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.session = get_session(viewer)
        self.viewer = self.session.viewer
        tabify_when_docked(self)
        self.worker = None
        self.result: ReconstructResult | None = None
        self.manual_frames: dict[int, int] = {}

        self.method_combo = combo(["adaptive", "paper", "ridge"], "adaptive: normalised WB sum, thresholds from the data; "
                                  "paper: the published fixed threshold; ridge: line filter (docs/reconstruction.md)")
        self.source_combo = combo(LABEL_SOURCES)
        self.threshold_spin = float_spin(0.05, 5.0, 0.65, step=0.05,
                                         tip="paper method: threshold on the normalised WB sum (0.6-0.7 in the paper)")
        self.manual_check = check("Manual reference too", True, "Also reconstruct the paper's manual reference (one "
                                  "weak-beam frame per layer) and compare the two")
        self.render_combo = combo(["mip", "iso", "attenuated_mip"])
        self.pick_button = button("Manual ref.: use this frame", "as the paper's manual method: pick one weak-beam "
                                  "frame per layer (layers not picked use the default rule)", lambda: self.pick_manual_frame())
        self.picks_label = label()
        self.surface_check = check("Surface (marching cubes)")
        self.drift_combo = combo([DRIFT_FROM_LINES], "Where the drift between layers is measured: from the lines "
                                 "(up to its linear trend), or on the rectangle of a Shapes layer drawn around a static "
                                 "non-diffracting feature seen in every layer (a marker, a pore, the sample's edge): "
                                 "trend included")
        self.correct_check = check("Correct for the drift", False, "Correct points and lines for the drift (always "
                                   "recorded in the reconstruction)")
        self.scheduler_edit = line_edit("optional, e.g. tcp://host:8786",
                                        "Run the layers on a Dask cluster (docs/cluster.md); empty: here")
        self.run_button = button("Reconstruct", "", lambda: self.toggle_run())
        self.progress = QProgressBar()
        self.status_label = label("Reconstruct the whole scan in 3D from its weak-beam data.")
        self.canvas = PlotCanvas(height=2.4)
        self.export_h5_button = button("Export HDF5...", "", lambda: self._export_dialog("h5"))
        self.export_tif_button = button("Export TIFF...", "", lambda: self._export_dialog("tif"))
        self.export_pts_button = button("Export points...", "", lambda: self._export_dialog("points"))
        column(self, form(("Method", self.method_combo), ("WB/SB labels", self.source_combo),
                          ("Threshold", self.threshold_spin), ("3D rendering", self.render_combo),
                          ("Drift", self.drift_combo), ("Scheduler address", self.scheduler_edit)),
               self.correct_check, self.manual_check, self.pick_button, self.picks_label, self.surface_check, self.run_button,
               self.progress, self.status_label, self.canvas,
               grid((self.export_h5_button, 0, 0), (self.export_tif_button, 0, 1), (self.export_pts_button, 1, 0, 1, 2)))

        on(self, self.session.scan_changed, self._on_scan_changed)
        self.render_combo.currentTextChanged.connect(self._on_rendering)
        self.viewer.dims.events.current_step.connect(self._surfaces_follow_frame)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            on(self, event, self._refresh_drift_choices)
        self._refresh_drift_choices()
        self.drift_combo.currentTextChanged.connect(self._on_drift_choice)

    # -- inputs -----------------------------------------------------------------------------------
    def params(self) -> Any:
        from ..core.reconstruction.reconstruct import ReconstructionParams

        box = None
        if self.drift_combo.currentIndex() > 0:
            name = self.drift_combo.currentText()
            if name not in self.viewer.layers:
                raise WeakbeamError(f"no layer {name!r}: choose the Shapes layer of the drift reference again")
            image = scan_layer(self.session)
            if image is None:
                raise WeakbeamError("no scan: open a scan (File > Open, or a sample) and select its image layer")
            box = drift_box(self.viewer.layers[name], image)
        return ReconstructionParams(method=self.method_combo.currentText(), threshold=float(self.threshold_spin.value()),
                                    correct_drift=self.correct_check.isChecked(), drift_reference=box)

    def _on_drift_choice(self, name: str) -> None:
        """A Shapes layer chosen as the drift reference takes the scan's units (napari warns on a
        mismatch; the box is read in world coordinates either way)."""
        image = scan_layer(self.session)
        if self.drift_combo.currentIndex() > 0 and name in self.viewer.layers and image is not None:
            shapes = self.viewer.layers[name]
            shapes.units = tuple(image.units)[-shapes.ndim:]

    def _refresh_drift_choices(self, event: Any = None) -> None:
        """Keep the Drift combo's Shapes layers in step with the viewer's (the choice is kept)."""
        current = self.drift_combo.currentText()
        items = drift_reference_choices(self.viewer)
        self.drift_combo.blockSignals(True)
        self.drift_combo.clear()
        self.drift_combo.addItems(items)
        self.drift_combo.setCurrentIndex(items.index(current) if current in items else 0)
        self.drift_combo.blockSignals(False)

    def _on_scan_changed(self) -> None:
        self.manual_frames.clear()
        self.picks_label.setText("")

    @report_errors
    def pick_manual_frame(self) -> tuple[int, int] | None:
        """Use the frame in view as the manual reference's frame of the layer in view."""
        scan_to_reconstruct(self.session)
        layer, frame = self.session.current_index()
        self.manual_frames[layer] = frame
        picked = ", ".join(f"layer {k}: frame {v}" for k, v in sorted(self.manual_frames.items()))
        self.picks_label.setText(f"manual frames picked: {picked}")
        return layer, frame

    # -- running ----------------------------------------------------------------------------------
    def toggle_run(self) -> None:
        if self.worker is not None:
            self.worker.quit()
        else:
            self.run()

    @report_errors
    def run(self) -> Any:
        """Start the reconstruction of the whole scan in a worker; returns the worker."""
        scan = scan_to_reconstruct(self.session)
        source = label_source(self.session, scan, self.source_combo.currentIndex())
        params = self.params()
        picks = [self.manual_frames.get(i, -1) for i in range(scan.n_layers)]
        total = scan.n_layers * (2 if self.manual_check.isChecked() else 1)
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.run_button.setText("Stop")
        self.status_label.setText(f"reconstructing {scan.n_layers} layers ({params.method})...")
        self.worker = start_worker(
            self, reconstruct_job, scan, source, params, self.manual_check.isChecked(), default_tolerance(scan.pixel_size),
            self.scheduler_edit.text().strip(), picks, self.surface_check.isChecked(), _progress={"total": total},
            yielded=self._on_progress, returned=self._on_done, finished=self._on_finished)
        return self.worker

    def _on_progress(self, ev: Any) -> None:
        self.progress.setValue(ev.done)
        self.status_label.setText(ev.message)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setText("Reconstruct")

    def _on_done(self, result: ReconstructResult) -> None:
        self.result = result
        self.show_result(result)

    # -- display ----------------------------------------------------------------------------------
    def show_result(self, result: ReconstructResult) -> None:
        """Add (or replace) the 3D layers in the scan's world (z, y, x in um), switch to 3D, plot
        the distances."""
        text = show_result(self.viewer, scan_layer(self.session), result, self.render_combo.currentText())
        self.status_label.setText(text)
        self.plot_distances(result)

    def plot_distances(self, result: ReconstructResult) -> None:
        plot_distances(self.canvas, result)

    def _surfaces_follow_frame(self, event: Any = None) -> None:
        """A surface or a Shapes path (unlike a volume) cannot repeat over frames: move it to the frame in view."""
        if self.viewer.dims.ndim == 4:
            follow_frame(our_layers(self.viewer), float(self.viewer.dims.point[1]))

    def _on_rendering(self, rendering: str) -> None:
        for layer in our_layers(self.viewer):
            if layer.name.endswith("volume"):
                layer.rendering = rendering

    # -- export -----------------------------------------------------------------------------------
    def _require_result(self) -> Any:
        if self.result is None:
            raise WeakbeamError("nothing to export yet: press Reconstruct first")
        return self.result.auto

    @report_errors
    def export_to(self, path: str, rec: Any = None) -> str:
        """Export the automated reconstruction (or ``rec``) by extension: .h5, .tif, .vtk, .xdmf, .csv."""
        from ..core.reconstruction.exports import export

        rec = rec if rec is not None else self._require_result()
        out = export(path, rec)
        show_info(f"exported {out}")
        return str(out)

    @report_errors
    def _export_dialog(self, kind: str) -> None:
        self._require_result()
        path = ask_save_path(self, "Export reconstruction", "", EXPORT_FILTERS[kind])
        if path:
            self.export_to(path)
