"""The files we write are NeXus (checked with silx's NXdata reader, as silx view uses it), their
data stay where the readers find them, and files of the previous version (tests/data/previous,
written by main before the NeXus layout) still load."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from silx.io.nxdata import NXdata, get_default, is_valid_nxdata

from napari_weakbeam.cli import main
from napari_weakbeam.core.classification.annotations import load_annotations, save_annotations
from napari_weakbeam.core.classification.predictions import PredictionWriter, load_predictions
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction
from napari_weakbeam.core.simulate import load_truth

DATA = Path(__file__).parent / "data"
PREVIOUS = DATA / "previous"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """The four kinds of file, made by the current code (the script that made tests/data/previous)."""
    folder = tmp_path_factory.mktemp("nexus")
    runpy.run_path(str(DATA / "make_previous_files.py"))["main"](str(folder))
    return folder


def nxdata_groups(entry: h5py.Group) -> dict[str, h5py.Group]:
    return {k: v for k, v in entry.items() if isinstance(v, h5py.Group) and v.attrs.get("NX_class") == "NXdata"}


def axis_units(nx: NXdata) -> list[str]:
    return [str(nx.group[name].attrs.get("units", "")) for name in nx.axes_dataset_names]


# kind -> (entry, default NXdata, the dataset it plots, every NXdata the entry must hold)
EXPECTED = {
    "predictions": ("predictions", "probability", "probability_weak_beam", {"probability", "labels"}),
    "reconstruction": ("reconstruction", "map", "volume", {"map", "point_cloud", "line_vertices"}),
    "annotations": ("annotations", "labels", "label", {"labels"}),
    "simulation": ("ground_truth", "dislocations", "core_mask", {"dislocations", "classes_P32", "classes_P64", "points"}),
}


@pytest.mark.parametrize("kind", EXPECTED)
def test_files_are_nexus_and_open_on_their_plot(files, kind):
    entry, default, dataset, groups = EXPECTED[kind]
    with h5py.File(files / f"{kind}.h5", "r") as f:
        assert f.attrs["NX_class"] == "NXroot" and f.attrs["default"] == entry
        assert f[entry].attrs["NX_class"] == "NXentry"
        found = nxdata_groups(f[entry])
        assert set(found) == groups
        for name, g in found.items():
            assert is_valid_nxdata(g), (name, NXdata(g).issues)
        nx = get_default(f)  # the @default chain, as silx view follows it
        assert nx is not None and nx.group.name == f"/{entry}/{default}"
        # the signal is the file's own dataset (a soft link, no copy), plotted as images
        link = nx.group.get(nx.signal_dataset_name, getlink=True)
        assert isinstance(link, h5py.SoftLink) and link.path == f"/{entry}/{dataset}"
        np.testing.assert_array_equal(nx.signal[()], f[entry][dataset][()])
        assert nx.interpretation == "image" and nx.is_image
        # physical axes: z in um over layers, y and x in um (pixels only where the size is unknown)
        assert nx.axes_dataset_names[0] == "z"
        np.testing.assert_allclose(nx.axes[0], f[entry]["layer_positions"][()])
        units = axis_units(nx)
        assert units[0] == "um" and units[-2:] == (["pixel"] * 2 if kind == "annotations" else ["um"] * 2)
        if nx.signal.ndim == 4:  # patches: rocking angle in degrees (the simulation's layers share angles)
            assert nx.axes_dataset_names[1] == "rocking_angle" and units[1] == "deg"
            np.testing.assert_allclose(nx.axes[1], f[entry]["angles"][0])


def test_patch_axes_are_patch_centres_in_um(files):
    scan = open_scan(str(files / "simulation.h5"))
    pred = load_predictions(files / "predictions.h5")
    with h5py.File(files / "predictions.h5", "r") as f:
        nx = NXdata(f["predictions/labels"])
        y, x = nx.axes[2][()], nx.axes[3][()]
    p = pred.patch_size
    np.testing.assert_allclose(y, (np.arange(pred.label.shape[2]) * p + (p - 1) / 2) * scan.pixel_size)
    tth = np.radians(scan.metadata["two_theta"])
    np.testing.assert_allclose(x, (np.arange(pred.label.shape[3]) * p + (p - 1) / 2) * scan.pixel_size / np.sin(tth))


def test_point_clouds_are_3d_scatters(files):
    rec = load_reconstruction(files / "reconstruction.h5", volumes=False)
    truth = load_truth(files / "simulation.h5")
    for path, group, points in ((files / "reconstruction.h5", "reconstruction/point_cloud", rec.points_um),
                                (files / "simulation.h5", "ground_truth/points", truth.points_um)):
        with h5py.File(path, "r") as f:
            nx = NXdata(f[group])
            assert nx.is_valid and nx.is_scatter and len(nx.axes) == 3
            assert nx.axes_dataset_names == ["x", "y", "z"] and axis_units(nx) == ["um"] * 3
            np.testing.assert_allclose(np.column_stack([nx.axes[2], nx.axes[1], nx.axes[0]]), points, rtol=1e-6, atol=1e-4)
            assert set(np.unique(nx.signal[()])) <= set(range(len(rec.layer_positions)))
    with h5py.File(files / "reconstruction.h5", "r") as f:
        nx = NXdata(f["reconstruction/line_vertices"])
        assert nx.is_scatter and nx.signal_dataset_name == "line_id"
        np.testing.assert_array_equal(nx.signal[()], np.repeat(np.arange(len(rec.lines)), np.diff(rec.lines.offsets)))


def test_writer_paths_write_nexus(files, tmp_path, capsys):
    """The layer-by-layer writers (the command line) and annotations with a known pixel size."""
    sim = files / "simulation.h5"
    out = tmp_path / "vol.h5"
    assert main(["reconstruct", str(sim), "-p", str(files / "predictions.h5"), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    with h5py.File(out, "r") as f:
        assert get_default(f).group.name == "/reconstruction/map"
        assert all(is_valid_nxdata(g) for g in nxdata_groups(f["reconstruction"]).values())
    scan = open_scan(str(sim))
    ann = load_annotations(files / "annotations.h5")
    ann.pixel_um = (0.05, 0.14)
    save_annotations(tmp_path / "ann.h5", ann)
    with h5py.File(tmp_path / "ann.h5", "r") as f:
        nx = get_default(f)
        assert axis_units(nx)[-2:] == ["um", "um"]
        np.testing.assert_allclose(nx.axes[3][:2], np.array([15.5, 47.5]) * 0.14)
    assert load_annotations(tmp_path / "ann.h5").label.shape == (scan.n_layers, scan.n_frames, 2, 2)


# -- files of the previous version ------------------------------------------------------------------


def test_previous_version_files_still_load():
    for name in ("predictions", "reconstruction", "annotations"):
        with h5py.File(PREVIOUS / f"{name}.h5", "r") as f:
            assert "NX_class" not in f[name].attrs  # really the old layout
    scan = open_scan(str(PREVIOUS / "simulation.h5"))
    pred = load_predictions(PREVIOUS / "predictions.h5")
    pred.check_matches(scan)
    assert pred.complete and set(np.unique(pred.label)) <= {1, 2}
    rec = load_reconstruction(PREVIOUS / "reconstruction.h5")
    assert rec.volume.shape == (2, 64, 64) and len(rec.points_um) and rec.lines is not None
    ann = load_annotations(PREVIOUS / "annotations.h5")
    ann.check_matches(scan)
    assert ann.counts() == {1: 8, 2: 8}
    truth = load_truth(PREVIOUS / "simulation.h5")
    assert truth.classes(32).shape == pred.label.shape and len(truth.points_um)


def test_previous_predictions_are_upgraded_on_resume(tmp_path):
    """Resuming over a finished file of the previous version keeps its results and adds NeXus."""
    scan = open_scan(str(PREVIOUS / "simulation.h5"))
    old = tmp_path / "pred.h5"
    shutil.copyfile(PREVIOUS / "predictions.h5", old)
    before = load_predictions(old)
    with PredictionWriter(old, scan, before.patch_size, resume=True) as writer:
        assert writer.done_layers() == {0, 1}
    after = load_predictions(old)
    np.testing.assert_array_equal(after.label, before.label)
    with h5py.File(old, "r") as f:
        assert get_default(f).group.name == "/predictions/probability"


def test_nearest_layer_is_the_nearest():
    from napari_weakbeam.core.scanfiles.nexus import nearest_layer

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 50):
        pos = rng.permutation(np.arange(n) * 2.0 + rng.normal(0, 0.1, n))  # unsorted, uneven
        z = rng.uniform(-5, 2 * n + 5, 2000)
        np.testing.assert_array_equal(nearest_layer(z, pos), np.abs(z[:, None] - pos[None, :]).argmin(axis=1))
