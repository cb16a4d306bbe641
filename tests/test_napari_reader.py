"""The napari reader contribution, opened in a real viewer under Xvfb."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile

from types import SimpleNamespace

from napari_weakbeam._napari._scan_layer import scan_from_layer
from napari_weakbeam._napari.reader import get_reader, scan_layer_data
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.scanfiles.readers.edf import write_edf_series
from napari_weakbeam.core.scanfiles.scan import Scan

pytestmark = pytest.mark.gui
RNG = np.random.default_rng(3)


def bliss_file(tmp_path, **kw):
    layers = [RNG.integers(100, 3000, (6, 16, 24)).astype(np.uint16) for _ in range(3)]
    angles = [np.linspace(-0.05, 0.05, 6)] * 3
    path = tmp_path / "grain_a.h5"
    write_bliss(path, layers, angles, [20.0, 22.0, 24.0], pixel_size=0.075, **kw)
    return path, layers


def test_bliss_scan_opens_as_one_lazy_layer(make_napari_viewer, tmp_path):
    path, layers = bliss_file(tmp_path, external=True, compression="bitshuffle")
    viewer = make_napari_viewer()
    added = viewer.open(str(path), plugin="napari-weakbeam")
    assert len(added) == 1 and len(viewer.layers) == 1
    layer = viewer.layers[0]
    assert layer.name == "grain_a"
    assert isinstance(layer.data, da.Array) and layer.data.shape == (3, 6, 16, 24)
    np.testing.assert_allclose(layer.scale, [2.0, 1.0, 0.075, 0.075])
    assert tuple(layer.axis_labels) == ("layer", "frame", "y", "x")
    scan = scan_from_layer(layer)  # the file reopened from the layer's plain metadata
    assert isinstance(scan, Scan) and scan.source == str(path)
    assert layer.metadata["weakbeam_scan"]["open"] == [str(path)]
    np.testing.assert_allclose(layer.metadata["angles"], scan.angles)
    assert layer.metadata["source"] == str(path)
    lo, hi = layer.contrast_limits
    assert 100 <= lo < hi <= 3000
    np.testing.assert_array_equal(np.asarray(layer.data[2, 3]), layers[2][3])


def test_edf_folder_and_tiff_open(make_napari_viewer, tmp_path):
    data = RNG.integers(100, 3000, (4, 8, 10)).astype(np.uint16)
    write_edf_series(tmp_path / "edf", [data], [np.linspace(1, 2, 4)], [0.0])
    tifffile.imwrite(tmp_path / "stack.tif", data, photometric="minisblack")
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "edf"), plugin="napari-weakbeam")
    viewer.open(str(tmp_path / "stack.tif"), plugin="napari-weakbeam")
    assert [layer.data.shape for layer in viewer.layers] == [(1, 4, 8, 10)] * 2
    assert [tuple(layer.scale) for layer in viewer.layers] == [(1.0, 1.0, 1.0, 1.0)] * 2
    np.testing.assert_allclose(viewer.layers[0].metadata["angles"][0], np.linspace(1, 2, 4))
    files = sorted(str(p) for p in (tmp_path / "edf").iterdir())
    viewer.open(files[::-1], plugin="napari-weakbeam", stack=True)  # several EDF files: one series
    assert len(viewer.layers) == 3 and viewer.layers[2].data.shape == (1, 4, 8, 10)
    np.testing.assert_array_equal(np.asarray(viewer.layers[2].data[0, 3]), data[3])


def test_get_reader_declines_what_it_cannot_read(tmp_path):
    flat = tmp_path / "photo.tif"
    tifffile.imwrite(flat, np.zeros((8, 8), np.uint8))
    txt = tmp_path / "notes.h5"
    txt.write_text("not hdf5")
    import h5py

    with h5py.File(tmp_path / "table.h5", "w") as f:
        f["x"] = np.arange(10)
    for p in (flat, txt, tmp_path / "missing.h5", tmp_path):
        assert get_reader(str(p)) is None, p
    path, _ = bliss_file(tmp_path)
    assert callable(get_reader(str(path)))


def test_non_scan_hdf5_says_why(tmp_path, make_napari_viewer):
    """An HDF5 file that is not a scan is claimed so that the reason reaches the user (napari's
    own "refused" says none): no image dataset, or frames too small to be detector images."""
    import h5py
    from napari.utils.notifications import notification_manager

    with h5py.File(tmp_path / "table.h5", "w") as f:
        f["x"] = np.arange(10)
    with h5py.File(tmp_path / "small.h5", "w") as f:
        f["t"] = np.ones((5, 3, 2))
    reader = get_reader(str(tmp_path / "table.h5"))
    with pytest.raises(WeakbeamError, match=r"not a DFXM scan: no Bliss scan entry and no 3D/4D image dataset \(it holds /x \(10,\)\)"):
        reader(str(tmp_path / "table.h5"))
    with pytest.raises(WeakbeamError, match=r"3 x 2 'frames' are smaller than 4 x 4 pixels"):
        get_reader(str(tmp_path / "small.h5"))(str(tmp_path / "small.h5"))
    # through napari: the one-line reason is shown, not only napari's "plugin failed"
    seen: list[str] = []

    def grab(notification):
        seen.append(str(notification.message))

    notification_manager.notification_ready.connect(grab)
    viewer = make_napari_viewer()
    try:
        with pytest.raises(Exception):
            viewer.open(str(tmp_path / "small.h5"), plugin="napari-weakbeam")
    finally:
        notification_manager.notification_ready.disconnect(grab)
    assert any("smaller than 4 x 4 pixels" in m for m in seen), seen
    assert len(viewer.layers) == 0


def test_broken_file_claimed_gives_one_line_error(tmp_path):
    path, _ = bliss_file(tmp_path, external=True)
    (tmp_path / "grain_a_scan0001_pco_ff.h5").unlink()
    reader = get_reader(str(path))
    assert reader is not None
    with pytest.raises(WeakbeamError, match="broken external link.*grain_a_scan0001_pco_ff.h5"):
        reader(str(path))


def test_scan_layer_data_helper(tmp_path):
    path, _ = bliss_file(tmp_path)
    scan = open_scan(path)
    data, kwargs, kind = scan_layer_data(scan, "sim")
    assert kind == "image" and data is scan.frames and kwargs["name"] == "sim"
    assert kwargs["metadata"]["weakbeam_scan"]["open"] == [scan.source]
    assert scan_from_layer(SimpleNamespace(data=data, metadata=kwargs["metadata"], name="sim")).shape == scan.shape
    assert kwargs["scale"] == (2.0, 1.0, 0.075, 0.075)


def test_own_output_files(make_napari_viewer, tmp_path):
    """A `weakbeam reconstruct` file opens as its 3D volume and points with the voxel size;
    annotation and predictions files (which need their scan) give one line that says what to do."""
    from napari_weakbeam.core.classification.annotations import Annotations, save_annotations
    from dataclasses import replace

    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.workflows import reconstruct_scan, run
    from napari_weakbeam.core.reconstruction.reconstruction_io import save_reconstruction

    path, _ = bliss_file(tmp_path)
    rec = run(reconstruct_scan(open_scan(path), None, replace(ReconstructionParams(min_size=1, manual_threshold=0.01), method="manual")))
    from napari_weakbeam.core.reconstruction.lines import Lines

    rec.lines = Lines.from_list([np.array([[0.0, 0.1, 0.2], [2.0, 0.3, 0.4], [4.0, 0.5, 0.5]])])
    vol = tmp_path / "vol.h5"
    save_reconstruction(vol, rec)
    viewer = make_napari_viewer()
    viewer.open(str(vol), plugin="napari-weakbeam")
    image = viewer.layers["vol volume"]
    assert image.data.shape == (3, 16, 24) and image.rendering == "mip"
    np.testing.assert_allclose(image.scale, rec.voxel_size_um)
    np.testing.assert_allclose(image.translate, rec.origin_um)
    if len(rec.points_um):
        np.testing.assert_allclose(viewer.layers["vol points"].data, rec.points_um)
    lines = viewer.layers["vol lines"]  # the 3D lines as paths, in micrometres
    assert list(lines.shape_type) == ["path"]
    np.testing.assert_allclose(lines.data[0], rec.lines.line(0))
    ann = tmp_path / "ann.h5"
    save_annotations(ann, Annotations(np.ones((3, 6, 1, 1), np.uint8), 32, (16, 24)))
    reader = get_reader(str(ann))
    assert reader is not None
    with pytest.raises(WeakbeamError, match=r"ann\.h5: a napari-weakbeam annotations file, not a scan.*Annotate"):
        reader(str(ann))
