"""Reconstruct dock widget: 3D dislocations from the weak-beam data of the whole scan.

Runs :func:`~napari_weakbeam.core.reconstruction.reconstruct.reconstruct_scan` (and optionally the manual
reference) layer by layer in a worker with progress, then shows the result in 3D with the physical
voxel size: the mask volume (mip or iso), its points, optionally a marching-cubes surface;
automated in orange, manual in blue. The symmetric nearest-neighbour distances between the two are
plotted in the dock; the results export to HDF5, TIFF and a ParaView point cloud (.vtk/.csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.reconstruction.compare import default_tolerance
from ..core.errors import WeakbeamError
from ._files import ask_save_path
from ._layers import as4d
from ._notify import report_errors, show_info, worker_error_to
from ._plot import FOREGROUND, PlotCanvas
from ._dock import tabify_when_docked
from ._session import get_session
from ._space import points_4d, scale_4d, show_3d, space_of, volume_4d

if TYPE_CHECKING:
    import napari

# Not the WB / SB label colours: a reconstruction is not a class.
AUTO_COLOUR = "#ff5ad2"  # magenta: the automated reconstruction
MANUAL_COLOUR = "#3ee0d0"  # cyan: the manual reference
TRUTH_COLOUR = "#a8e05f"  # green: a ground truth (simulations)
LINES_COLOUR = "#ffffff"  # white: the traced 3D dislocation lines
VIEW_ANGLES = (-20.0, 30.0, 120.0)  # oblique: the stacking of the layers shows (napari >= 0.7 angles)
LABEL_SOURCES = ("predictions layer, else classify", "classify on the fly", "no labels (every frame)")


@dataclass
class LabelArray:
    """Predictions held in memory (e.g. a napari Labels layer): ``.label`` 4D and ``.patch_size``."""

    label: np.ndarray
    patch_size: int


@dataclass
class ReconstructResult:
    """What the worker returns: the reconstructions and their comparison (None when not run)."""

    auto: Any
    manual: Any = None
    stats: Any = None
    d_ab: np.ndarray | None = None
    d_ba: np.ndarray | None = None
    surfaces: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # name -> (verts, faces), z y x um


def reconstruct_job(scan: Any, source: Any, params: Any, with_manual: bool, tolerance: float,
                    scheduler: str = "", manual_frames: list[int] | None = None,
                    with_surface: bool = False) -> Iterator[tuple[str, int, int]]:
    """Worker body: yields (what, done, total) per layer; returns a :class:`ReconstructResult`.

    With a Dask ``scheduler`` address the layers run on its workers (docs/cluster.md).
    ``manual_frames``: the manual reference's frame per layer (-1: the default rule).
    """
    from dataclasses import replace

    from ..core.reconstruction.compare import compare_points
    from ..core.reconstruction.reconstruct import assemble, iter_reconstruct_scan, process_layer

    def run(results: Iterator[Any], what: str, p: Any) -> Iterator[tuple[str, int, int]]:
        n, (rows, cols) = scan.n_layers, scan.frame_shape
        vol = np.zeros((n, rows, cols), np.float32)
        mask, skel = np.zeros((n, rows, cols), bool), np.zeros((n, rows, cols), bool)
        used = np.full(n, -1, dtype=np.int64)
        noise = np.full((n, 2), np.nan)
        reg: list[Any] = [None] * n
        for done, res in enumerate(results, start=1):
            vol[res.index], mask[res.index], skel[res.index], used[res.index] = res.map, res.mask, res.skeleton, res.frame_used
            noise[res.index], reg[res.index] = res.noise, res.reg
            yield (what, done, n)
        out[what] = assemble(vol, mask, skel, scan, p, used, noise=noise, reg=reg)

    def layers(src: Any, p: Any) -> Iterator[Any]:
        if scheduler:
            from ..core.distribution.distributed_tasks import iter_reconstruct_layers

            return iter_reconstruct_layers(scan, src, p, scheduler=scheduler, frames=manual_frames)
        if p.method == "manual":
            picks = manual_frames or [-1] * scan.n_layers
            return (process_layer(scan, i, p, frame=picks[i] if picks[i] >= 0 else None) for i in range(scan.n_layers))
        return iter_reconstruct_scan(scan, src, p)

    out: dict[str, Any] = {}
    yield from run(layers(source, params), "automated", params)
    result = ReconstructResult(out["automated"])
    if with_manual:
        mp = replace(params, method="manual")
        yield from run(layers(None, mp), "manual", mp)
        result.manual = out["manual"]
        auto, manual = result.auto, result.manual
        if len(auto.points_um) and len(manual.points_um):
            result.stats, result.d_ab, result.d_ba = compare_points(
                auto.points_um, manual.points_um, tolerance, names=("automated", "manual")
            )
    if with_surface:  # marching cubes here, never on the GUI thread (seconds on a real scan)
        result.surfaces = {}
        for name, rec in (("automated", result.auto), ("manual", result.manual)):
            if rec is not None and rec.mask.any():
                result.surfaces[name] = surface_mesh(rec.mask, tuple(rec.voxel_size_um), rec.origin_um)
    return result


class ReconstructWidget(QWidget):
    """Run the 3D reconstruction of the whole scan and show it in 3D."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.session = get_session(viewer)
        tabify_when_docked(self)
        self.worker = None
        self.result: ReconstructResult | None = None

        self.method_combo = QComboBox()
        self.method_combo.addItems(["adaptive", "paper", "ridge"])
        self.method_combo.setToolTip(
            "adaptive: normalised WB sum, thresholds from the data; paper: the published fixed threshold; "
            "ridge: line filter (docs/reconstruction.md)"
        )
        self.source_combo = QComboBox()
        self.source_combo.addItems(list(LABEL_SOURCES))
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.05, 5.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(0.65)
        self.threshold_spin.setToolTip("paper method: threshold on the normalised WB sum (0.6-0.7 in the paper)")
        self.manual_check = QCheckBox("Manual reference too")
        self.manual_check.setToolTip("Also reconstruct the paper's manual reference (one weak-beam frame per layer) "
                                     "and compare the two")
        self.manual_check.setChecked(True)
        self.render_combo = QComboBox()
        self.render_combo.addItems(["mip", "iso", "attenuated_mip"])
        self.pick_button = QPushButton("Manual ref.: use this frame")
        self.pick_button.setToolTip("as the paper's manual method: pick one weak-beam frame per layer "
                                    "(layers not picked use the default rule)")
        self.picks_label = QLabel()
        self.picks_label.setWordWrap(True)
        self.manual_frames: dict[int, int] = {}
        self.surface_check = QCheckBox("Surface (marching cubes)")
        self.scheduler_edit = QLineEdit()
        self.scheduler_edit.setPlaceholderText("optional, e.g. tcp://host:8786")
        self.scheduler_edit.setToolTip("Run the layers on a Dask cluster (docs/cluster.md); empty: here")
        self.run_button = QPushButton("Reconstruct")
        self.progress = QProgressBar()
        self.status_label = QLabel("Reconstruct the whole scan in 3D from its weak-beam data.")
        self.status_label.setWordWrap(True)
        self.canvas = PlotCanvas(height=2.4)
        self.export_h5_button = QPushButton("Export HDF5...")
        self.export_tif_button = QPushButton("Export TIFF...")
        self.export_pts_button = QPushButton("Export points...")

        form = QFormLayout()
        form.addRow("Method", self.method_combo)
        form.addRow("WB/SB labels", self.source_combo)
        form.addRow("Threshold", self.threshold_spin)
        form.addRow("3D rendering", self.render_combo)
        form.addRow("Scheduler address", self.scheduler_edit)
        exports = QGridLayout()
        exports.addWidget(self.export_h5_button, 0, 0)
        exports.addWidget(self.export_tif_button, 0, 1)
        exports.addWidget(self.export_pts_button, 1, 0, 1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.manual_check)
        layout.addWidget(self.pick_button)
        layout.addWidget(self.picks_label)
        layout.addWidget(self.surface_check)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.canvas)
        layout.addLayout(exports)
        layout.addStretch(1)

        self.run_button.clicked.connect(lambda: self.toggle_run())
        self.pick_button.clicked.connect(lambda: self.pick_manual_frame())
        self.session.scan_changed.connect(self._on_scan_changed)
        self.export_h5_button.clicked.connect(lambda: self._export_dialog("h5"))
        self.export_tif_button.clicked.connect(lambda: self._export_dialog("tif"))
        self.export_pts_button.clicked.connect(lambda: self._export_dialog("points"))
        self.render_combo.currentTextChanged.connect(self._on_rendering)
        viewer.dims.events.current_step.connect(self._surfaces_follow_frame)

    # -- inputs -----------------------------------------------------------------------------------
    def _scan(self) -> Any:
        """The session's scan, or the selected/only Image layer that holds a scan."""
        if self.session.scan is not None and self.session.scan_layer in self.viewer.layers:
            return self.session.scan
        from napari.layers import Image

        from ._scan_layer import scan_from_layer

        images = [l for l in self.viewer.layers if isinstance(l, Image) and l.ndim in (3, 4)
                  and not l.name.startswith("reconstruction")]
        active = self.viewer.layers.selection.active
        layer = active if active in images else (images[0] if len(images) == 1 else None)
        if layer is None:
            raise WeakbeamError("no scan: open a scan (File > Open, or a sample) and select its image layer")
        return scan_from_layer(layer)

    def params(self) -> Any:
        from ..core.reconstruction.reconstruct import ReconstructionParams

        return ReconstructionParams(method=self.method_combo.currentText(), threshold=float(self.threshold_spin.value()))

    def _label_source(self, scan: Any) -> Any:
        choice = self.source_combo.currentIndex()
        if choice == 2:
            return None
        pred = self.session.predictions if self.session.scan is scan else None
        if choice == 0 and pred is not None:
            label = np.asarray(as4d(pred.data))
            valid = np.isfinite(scan.angles)
            if label.shape[:2] == valid.shape and np.all(label[valid].reshape(int(valid.sum()), -1).any(axis=1)):
                return LabelArray(label.copy(), int(self.session.patch_size))
        clf = self.session.classifier
        if clf is None:
            from ..core.classification.modelfile import load_default_model

            clf = load_default_model()
        patch = self.session.patch_size if self.session.scan is scan else clf.patch_size
        return clf.with_patch_size(int(patch)) if hasattr(clf, "with_patch_size") else clf

    def _scan_layer(self) -> Any:
        """The Image layer of the scan reconstructed (whose axes the 3D layers join)."""
        if self.session.scan_layer is not None and self.session.scan_layer in self.viewer.layers:
            return self.session.scan_layer
        from napari.layers import Image

        images = [l for l in self.viewer.layers if isinstance(l, Image) and l.ndim in (3, 4)
                  and not l.name.startswith("reconstruction")]
        active = self.viewer.layers.selection.active
        return active if active in images else (images[0] if images else None)

    def _on_scan_changed(self) -> None:
        self.manual_frames.clear()
        self.picks_label.setText("")

    @report_errors
    def pick_manual_frame(self) -> tuple[int, int] | None:
        """Use the frame in view as the manual reference's frame of the layer in view."""
        self._scan()
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
        scan = self._scan()
        source = self._label_source(scan)
        params = self.params()
        tol = default_tolerance(scan.pixel_size)
        picks = [self.manual_frames.get(i, -1) for i in range(scan.n_layers)]
        worker = create_worker(reconstruct_job, scan, source, params, self.manual_check.isChecked(), tol,
                               self.scheduler_edit.text().strip(), picks, self.surface_check.isChecked(),
                               _progress={"total": scan.n_layers * (2 if self.manual_check.isChecked() else 1)})
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_done)
        worker.errored.connect(worker_error_to(self))
        worker.finished.connect(self._on_finished)
        self.progress.setRange(0, scan.n_layers * (2 if self.manual_check.isChecked() else 1))
        self.progress.setValue(0)
        self.run_button.setText("Stop")
        self.status_label.setText(f"reconstructing {scan.n_layers} layers ({params.method})...")
        self.worker = worker
        worker.start()
        return worker

    def _on_progress(self, item: tuple[str, int, int]) -> None:
        what, done, total = item
        self.progress.setValue(done + (total if what == "manual" else 0))
        self.status_label.setText(f"{what}: layer {done}/{total}")

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
        self._show(result.auto, "automated", AUTO_COLOUR, result)
        if result.manual is not None:
            self._show(result.manual, "manual", MANUAL_COLOUR, result)
        shown = [layer for layer in self.viewer.layers if layer.name.startswith("reconstruction ")]
        show_3d(self.viewer, [layer.name for layer in shown])
        _camera(self.viewer).angles = VIEW_ANGLES
        _fit(self.viewer, shown)
        text = f"{len(result.auto.points_um)} points ({result.auto.method})"
        if result.auto.lines is not None:
            text += f"; {len(result.auto.lines)} lines, {result.auto.lines.lengths().sum():.3g} um"
        if result.manual is not None:
            text += f"; manual reference {len(result.manual.points_um)} points"
        if result.stats is not None:
            s = result.stats
            text += (f"<br>automated vs manual: median {s.median:.3g} um, mean {s.mean:.3g} um, "
                     f"p90 {s.p90:.3g} um; {100 * s.within:.0f} % within {s.tolerance:.3g} um")
        self.status_label.setText(text)
        self.plot_distances(result)

    def _show(self, rec: Any, name: str, colour: str, result: ReconstructResult | None = None) -> None:
        space = space_of(self._scan_layer())
        axes = {"axis_labels": space["axis_labels"], "units": space["units"]}
        zyx = tuple(float(v) for v in rec.voxel_size_um)
        scale = scale_4d(zyx)
        translate = scale_4d(tuple(rec.origin_um))
        translate = (translate[0], 0.0) + translate[2:]
        names = {k: f"reconstruction {name} {k}" for k in ("volume", "points", "surface", "lines")}
        for n in names.values():
            if n in self.viewer.layers:
                self.viewer.layers.remove(n)
        self.viewer.add_image(
            volume_4d(rec.mask.astype(np.float32), space["n_frames"]), name=names["volume"], scale=scale,
            translate=translate, rendering=self.render_combo.currentText(), iso_threshold=0.5,
            colormap=_colormap(colour, name), blending="additive", contrast_limits=(0, 1),
            opacity=1.0 if name == "automated" else 0.6, **axes,
        )
        if len(rec.points_um):
            self.viewer.add_points(
                points_4d(rec.points_um), name=names["points"], size=point_size(zyx),
                face_color=colour, border_width=0, blending="translucent", projection_mode="all",
                shading="spherical", **axes,
            )
        surfaces = (result.surfaces or {}) if result is not None else {}
        if name in surfaces and len(surfaces[name][1]):
            verts, faces = surfaces[name]
            self.viewer.add_surface((points_4d(verts, self.viewer.dims.point[1] if self.viewer.dims.ndim == 4 else 0.0),
                                     faces), name=names["surface"], colormap=_colormap(colour, name),
                                    opacity=0.7, blending="translucent", shading="smooth", **axes)

        lines = getattr(rec, "lines", None)
        keep = [] if lines is None or name != "automated" else [k for k in range(len(lines)) if len(lines.line(k)) >= 2]
        if keep:
            frame = float(self.viewer.dims.point[1]) if self.viewer.dims.ndim == 4 else 0.0
            self.viewer.add_shapes(  # a Shapes layer cannot repeat over frames: it follows the frame in view
                [points_4d(lines.line(k), frame) for k in keep], shape_type="path", name=names["lines"],
                edge_color=LINES_COLOUR, edge_width=2 * zyx[1], blending="translucent_no_depth",
                properties={"length_um": lines.lengths()[keep]}, **axes,
            )

    def _surfaces_follow_frame(self, event: Any = None) -> None:
        """A surface or a Shapes path (unlike a volume) cannot repeat over frames: move it to the frame in view."""
        if self.viewer.dims.ndim != 4:
            return
        frame = float(self.viewer.dims.point[1])
        for layer in self.viewer.layers:
            if layer.name.startswith("reconstruction") and layer.name.endswith("surface"):
                verts, faces = layer.data[0], layer.data[1]
                if len(verts) and verts.shape[1] == 4 and verts[0, 1] != frame:
                    verts = verts.copy()
                    verts[:, 1] = frame
                    layer.data = (verts, faces) + tuple(layer.data[2:])
            elif layer.name.startswith("reconstruction") and layer.name.endswith("lines") and len(layer.data):
                if layer.data[0].shape[1] == 4 and layer.data[0][0, 1] != frame:
                    paths = [np.asarray(p).copy() for p in layer.data]
                    for p in paths:
                        p[:, 1] = frame
                    layer.data = paths

    def _on_rendering(self, rendering: str) -> None:
        for layer in self.viewer.layers:
            if layer.name.startswith("reconstruction") and layer.name.endswith("volume"):
                layer.rendering = rendering

    def plot_distances(self, result: ReconstructResult) -> None:
        from ..core.reconstruction.compare import plot_histogram

        ax = self.canvas.axes
        ax.clear()
        if result.d_ab is not None and result.d_ba is not None:
            plot_histogram(ax, result.d_ab, result.d_ba, ("automated -> manual", "manual -> automated"),
                           tolerance=result.stats.tolerance if result.stats is not None else None)
            leg = ax.get_legend()
            if leg is not None:
                leg.get_frame().set_alpha(0.3)
                for t in leg.get_texts():
                    t.set_color(FOREGROUND)
        else:
            ax.text(0.5, 0.5, "no manual reference to compare with", ha="center", va="center",
                    color=FOREGROUND, transform=ax.transAxes, fontsize=8)
        self.canvas.style()
        self.canvas.draw_idle()

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
        filters = {"h5": "Reconstruction (*.h5)", "tif": "TIFF stack (*.tif)",
                   "points": "ParaView point cloud (*.vtk);;ParaView XDMF point cloud (*.xdmf);;CSV points (*.csv)"}[kind]
        path = ask_save_path(self, "Export reconstruction", "", filters)
        if path:
            self.export_to(path)



def _fit(viewer: Any, layers: list[Any]) -> None:
    """Centre and zoom the 3D view on ``layers`` (the hidden 4D scan would otherwise set the zoom).

    ``reset_view`` fits every layer; the zoom is then scaled by how much smaller the extent of
    ``layers`` is, and the camera centred on them.
    """
    angles = _camera(viewer).angles
    viewer.reset_view()
    camera = _camera(viewer)
    camera.angles = angles
    if not layers:
        return
    shown = list(viewer.dims.displayed)
    ndim = viewer.dims.ndim
    mine = np.stack([_world(layer.extent.world, ndim)[:, shown] for layer in layers])
    lo, hi = mine[:, 0].min(axis=0), mine[:, 1].max(axis=0)
    full = np.asarray(viewer.layers.extent.world, dtype=float)[:, shown]
    size_full = float(np.max(full[1] - full[0]))
    size_mine = float(np.max(hi - lo))
    if size_mine > 0 and size_full > 0:
        camera.zoom = camera.zoom * 0.95 * size_full / size_mine
    camera.center = tuple((lo + hi) / 2)


def _world(extent: Any, ndim: int) -> np.ndarray:
    """A layer's world extent padded in front to the viewer's dimensions."""
    e = np.asarray(extent, dtype=float)
    return np.concatenate([np.zeros((2, ndim - e.shape[1])), e], axis=1) if e.shape[1] < ndim else e


def _camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def point_size(voxel_zyx: tuple[float, float, float]) -> float:
    """Points as large as a voxel reads in 3D: the larger of 3 pixels and half the layer spacing."""
    return max(3.0 * max(voxel_zyx[1], voxel_zyx[2]), 0.5 * voxel_zyx[0])


def _colormap(colour: str, name: str) -> Any:
    from napari.utils.colormaps import Colormap

    return Colormap(colors=[[0, 0, 0, 0], colour], name=f"weakbeam {name}")


def surface_mesh(mask: np.ndarray, scale: tuple[float, float, float], translate: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes surface of a binary volume, in physical coordinates (vertices, faces)."""
    from skimage.measure import marching_cubes

    padded = np.pad(np.asarray(mask, dtype=np.float32), 1)
    if padded.shape[0] < 2 or not padded.any():
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts, faces, _n, _v = marching_cubes(padded, level=0.5, spacing=scale)
    verts = verts - np.asarray(scale) + np.asarray(translate)
    return verts, faces
