"""The Reconstruct widget in a real napari viewer under Xvfb: the bundled multi-layer sample
reconstructed in a worker, shown in 3D with physical scale, compared with the manual reference and
with the simulator's ground truth, exported."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_weakbeam._napari._layers import as4d
from napari_weakbeam._napari._session import get_session
from napari_weakbeam.core.reconstruction.compare import compare_points
from napari_weakbeam.core.reconstruction.exports import read_mesh
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction
from napari_weakbeam.core.simulate import load_truth

pytestmark = pytest.mark.gui
PLUGIN = "napari-weakbeam"
P = 32


def _sample_with_truth_predictions(viewer):
    """Open the multi-layer sample and fill the session's predictions with the true classes."""
    (layer,) = viewer.open_sample(PLUGIN, "multi_layer")
    session = get_session(viewer)
    session.set_scan_layer(layer, P)
    pred, _ = session.ensure_predictions()
    truth = load_truth(session.scan.source)
    as4d(pred.data)[...] = truth.classes(P)
    pred.refresh()
    return layer, session, truth


def _open_frames(make_napari_viewer, path, frames, sim):
    """Write ``frames`` (layers of a simulation ``sim``) as a Bliss scan at ``path``, open it in a
    viewer and dock the Reconstruct widget, set to reconstruct from every frame, automated only."""
    from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss

    p = sim.params
    write_bliss(path, list(frames), list(sim.angles), sim.layer_positions, pixel_size=p.pixel_size_um,
                two_theta=p.two_theta_deg)
    viewer = make_napari_viewer(show=True)
    [image] = viewer.open(str(path), plugin=PLUGIN)
    get_session(viewer).set_scan_layer(image, P)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Reconstruct")
    widget.manual_check.setChecked(False)
    widget.source_combo.setCurrentIndex(2)  # every frame: the drift does not need labels
    return viewer, image, widget


def _run(widget, qtbot):
    worker = widget.run()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: widget.worker is None, timeout=10_000)
    assert widget.result is not None
    return widget.result


def test_reconstruct_sample_in_3d(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer(show=True)
    layer, session, truth = _sample_with_truth_predictions(viewer)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Reconstruct")
    viewer.dims.set_current_step(0, 1)  # layer 1, frame 3: picked for the manual reference
    viewer.dims.set_current_step(1, 3)
    assert widget.pick_manual_frame() == (1, 3)
    result = _run(widget, qtbot)
    scan = session.scan
    assert result.manual.frames_used[1] == 3 and np.all(result.manual.frames_used >= 0)
    assert widget.progress.value() == widget.progress.maximum() == 2 * scan.n_layers

    # 3D view with the physical voxel size, automated and manual in two colours
    assert viewer.dims.ndisplay == 3
    vol = viewer.layers["reconstruction automated volume"]
    pts = viewer.layers["reconstruction automated points"]
    man = viewer.layers["reconstruction manual points"]
    # in the scan's world (z, frame, y, x): the volume repeats over the frames, z y x in um
    assert vol.data.shape == (scan.n_layers, scan.n_frames) + scan.frame_shape
    np.testing.assert_array_equal(vol.data[:, 3], result.auto.mask)
    assert tuple(np.asarray(vol.scale)[[0, 2, 3]]) == pytest.approx(result.auto.voxel_size_um)
    assert [str(vol.units[i]) for i in (0, 2, 3)] == ["micrometer"] * 3
    assert tuple(viewer.dims.axis_labels[i] for i in viewer.dims.displayed) == ("z", "y", "x")
    assert viewer.layers.extent.units is not None  # one unit per axis: napari never warns
    assert result.auto.voxel_size_um[0] == pytest.approx(2.0)
    assert result.auto.voxel_size_um[2] > result.auto.voxel_size_um[1]  # x stretched by 1/sin(2theta)
    assert not np.allclose(pts.face_color[0], man.face_color[0])
    assert not layer.visible
    # the traced 3D lines as paths in micrometres (z, frame, y, x: at the frame in view), one shape
    # per line of two or more vertices
    lines = viewer.layers["reconstruction automated lines"]
    expected = [v for v in result.auto.lines.to_list() if len(v) >= 2]
    assert lines.ndim == 4 and len(lines.data) == len(expected) > 0
    np.testing.assert_allclose(lines.data[0][:, [0, 2, 3]], expected[0])
    assert [str(lines.units[i]) for i in (0, 2, 3)] == ["micrometer"] * 3
    assert set(lines.shape_type) == {"path"}
    assert "lines" in widget.status_label.text()

    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].mean() > 10

    # the automated-vs-manual distance histogram is drawn in the dock
    assert result.comparison is not None and len(widget.canvas.axes.patches) > 0
    assert "median" in widget.status_label.text()

    # against the ground truth: the goals
    px = scan.pixel_size
    stats, _, _ = compare_points(result.auto.points_um, truth.points_um, 3 * px)
    assert stats.median <= 2 * px and stats.within_b >= 0.9, stats.summary()

    # exports
    h5 = widget.export_to(str(tmp_path / "rec.h5"))
    np.testing.assert_array_equal(load_reconstruction(h5).mask, result.auto.mask)
    assert tifffile.imread(widget.export_to(str(tmp_path / "rec.tif"))).shape == result.auto.mask.shape
    vtk = widget.export_to(str(tmp_path / "rec.vtk"))
    assert len(read_mesh(vtk).points) == len(result.auto.points_um)
    # through the dialog: a name typed without extension gets the chosen filter's
    from qtpy.QtWidgets import QFileDialog

    for kind, name_filter, ext in (("tif", "TIFF stack (*.tif)", ".tif"), ("points", "CSV points (*.csv)", ".csv"),
                                   ("h5", "Reconstruction (*.h5)", ".h5")):
        typed = str(tmp_path / f"typed_{kind}")
        monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (typed, name_filter)))
        widget._export_dialog(kind)
        assert (tmp_path / f"typed_{kind}{ext}").is_file()
    # the scan a reconstruction came from is never overwritten by an export (on a copy of the sample)
    import dataclasses
    import shutil

    copy = tmp_path / "scan_copy.h5"
    shutil.copyfile(session.scan.source, copy)
    assert widget.export_to(str(copy), rec=dataclasses.replace(result.auto, source=str(copy))) is None
    assert open_scan(str(copy)).shape == scan.shape


def test_classify_on_the_fly_surface_and_rendering(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    _sample_with_truth_predictions(viewer)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Reconstruct")
    widget.manual_check.setChecked(False)
    widget.surface_check.setChecked(True)
    widget.source_combo.setCurrentIndex(1)  # classify on the fly with the shipped model
    result = _run(widget, qtbot)
    assert result.manual is None and result.auto.method == "adaptive"
    truth = load_truth(get_session(viewer).scan.source)
    px = get_session(viewer).scan.pixel_size
    stats, _, _ = compare_points(result.auto.points_um, truth.points_um, 3 * px)
    assert stats.median <= 2 * px and stats.within_b >= 0.9, stats.summary()
    surf = viewer.layers["reconstruction automated surface"]
    assert result.surfaces and "automated" in result.surfaces  # made in the worker, not the GUI thread
    assert surf.data[0].shape[1] == 4  # z, frame, y, x: the scan's world
    verts = surf.data[0][:, [0, 2, 3]]
    # the surface wraps the voxels (centres at index x voxel size): within half a voxel of them
    vox = np.asarray(result.auto.voxel_size_um)
    lo, hi = -0.5 * vox, (np.asarray(result.auto.mask.shape) - 0.5) * vox
    assert np.all(verts.min(axis=0) >= lo - 1e-6) and np.all(verts.max(axis=0) <= hi + 1e-6)
    occupied = np.argwhere(result.auto.mask) * vox
    assert np.median(np.abs(verts[:, 0][:, None] - np.unique(occupied[:, 0])[None]).min(axis=1)) <= vox[0] / 2
    widget.render_combo.setCurrentText("iso")
    assert viewer.layers["reconstruction automated volume"].rendering == "iso"
    with_surface = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    surf.visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    assert with_surface.mean() > 0 and np.abs(with_surface - without).mean() > 0.5  # the surface is drawn


def test_errors_are_notifications(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Reconstruct")
    assert widget.run() is None  # no scan: a one-line notification, no worker
    assert widget.export_to("/tmp/never.h5") is None  # nothing to export yet


def test_stop_cancels_between_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _sample_with_truth_predictions(viewer)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Reconstruct")
    seen = []
    worker = widget.run()
    worker.yielded.connect(lambda item: (seen.append(item), worker.quit()))
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: widget.worker is None, timeout=10_000)
    assert widget.result is None and 1 <= len(seen) < 2 * 6  # stopped before all 12 layer steps
    assert widget.run_button.text() == "Reconstruct"
    assert not any(layer.name.startswith("reconstruction") for layer in viewer.layers)


def test_drift_on_a_drawn_reference_rectangle(make_napari_viewer, qtbot, tmp_path):
    """A drifted stack with a fiducial marker: a rectangle drawn on a Shapes layer around the
    marker (world coordinates, um) becomes the drift reference box; the drift recorded holds the
    trend (within 1 px of the applied one); an empty Shapes layer is a one-line notification."""
    from napari_weakbeam.core.simulate import SimulationParams, simulate
    from napari_weakbeam.core.simulate.drift import drift_errors, drift_stack
    from napari_weakbeam.core.simulate.grain import marker_box, marker_centre

    sim = simulate(SimulationParams(rows=128, cols=128, layers=4, frames=11, seed=2, walls=0, marker_radius_um=0.8))
    frames, _, applied = drift_stack(sim.frames, sim.truth.classes(P), 5.0, 3, P)
    p = sim.params
    viewer, image, widget = _open_frames(make_napari_viewer, tmp_path / "marker.h5", frames, sim)
    c, (r0, r1, c0, c1) = marker_centre(p), marker_box(p, np.abs(applied).max())
    rect = np.array([[r0, c0], [r1 - 1, c1 - 1]]) * image.scale[-2:] + image.translate[-2:]
    shapes = viewer.add_shapes([rect], shape_type="rectangle", name="marker box")
    assert "marker box" in [widget.drift_combo.itemText(i) for i in range(widget.drift_combo.count())]
    widget.drift_combo.setCurrentText("marker box")
    assert tuple(shapes.units) == tuple(image.units)[-2:]  # no units warning from napari
    widget.correct_check.setChecked(True)
    box = widget.params().drift_reference
    assert box[0] <= c[0] <= box[1] and box[2] <= c[1] <= box[3]
    result = _run(widget, qtbot)
    assert drift_errors(result.auto.drift_px, applied)[0] <= 1.0, (result.auto.drift_px.round(2).tolist(), applied.tolist())
    assert "drift on the reference" in widget.status_label.text() and "(corrected)" in widget.status_label.text()
    shapes.data = []
    assert widget.run() is None  # refused: a notification, no worker
    assert "holds no shape" in widget.status_label.text()


def test_status_says_when_the_drift_was_not_measured(make_napari_viewer, qtbot, tmp_path):
    """Two layers of a simulated grain (no line can cross three, the layers differ): the status
    line says the drift was not measured instead of quoting a drift."""
    from napari_weakbeam.core.simulate import SimulationParams, simulate

    sim = simulate(SimulationParams(rows=128, cols=128, layers=2, frames=11, seed=3, walls=0))
    _, _, widget = _open_frames(make_napari_viewer, tmp_path / "two.h5", sim.frames, sim)
    result = _run(widget, qtbot)
    assert result.auto.drift_source == "none"
    assert "drift not measured" in widget.status_label.text() and "px per layer" not in widget.status_label.text()


def test_status_says_which_camera_defects_were_repaired(make_napari_viewer, qtbot, tmp_path):
    """A layer with hot pixels and zingers added: the widget repairs them before the map and its
    status line says so (docs/reconstruction.md step 2)."""
    from napari_weakbeam.core.simulate import SimulationParams, simulate
    from napari_weakbeam.core.simulate.camera_defects import add_camera_defects

    sim = simulate(SimulationParams(rows=128, cols=128, layers=1, frames=15, seed=4, walls=0))
    frames = add_camera_defects(np.asarray(sim.frames[0]))[0][None]
    _, _, widget = _open_frames(make_napari_viewer, tmp_path / "defects.h5", frames, sim)
    result = _run(widget, qtbot)
    assert result.auto.defects is not None and result.auto.defects[0, 0] >= 8 and result.auto.defects[0, 1] > 0
    assert "camera defects repaired: up to" in widget.status_label.text()
