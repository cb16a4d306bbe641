import numpy as np
import pytest

from napari_weakbeam.core.classification.annotations import Annotations, load_annotations, save_annotations
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.patches import extract_patches, grid_shape, patch_means, upsample_labels


def test_grid_is_ceil_and_padded():
    img = np.arange(70 * 50, dtype=float).reshape(70, 50)
    assert grid_shape(img.shape, 32) == (3, 2)
    patches = extract_patches(img, 32)
    assert patches.shape == (3, 2, 32, 32)
    np.testing.assert_array_equal(patches[1, 1], np.pad(img, ((0, 26), (0, 14)), mode="edge")[32:64, 32:64])
    means = patch_means(img, 32)
    assert means.shape == (3, 2)
    assert means[0, 0] == pytest.approx(img[:32, :32].mean())
    up = upsample_labels(np.array([[1, 2], [2, 1], [0, 1]]), 32, img.shape)
    assert up.shape == img.shape and up[0, 40] == 2 and up[69, 0] == 0


def test_annotations_round_trip_and_atomic(tmp_path):
    lab = np.zeros((2, 5, 3, 4), np.uint8)
    lab[0, 1, 0, 0] = 1
    lab[1, 4, 2, 3] = 2
    ann = Annotations(lab, 32, (70, 100), angles=np.zeros((2, 5)), source="x.h5", scan_names=["1.1", "2.1"])
    path = tmp_path / "ann.h5"
    save_annotations(path, ann)
    back = load_annotations(path)
    np.testing.assert_array_equal(back.label, lab)
    assert back.patch_size == 32 and back.frame_shape == (70, 100) and back.scan_names == ["1.1", "2.1"]
    assert back.counts() == {1: 1, 2: 1}
    # A failing save leaves the earlier file intact.
    with pytest.raises(WeakbeamError):
        save_annotations(path, Annotations(lab[0], 32, (70, 100)))
    np.testing.assert_array_equal(load_annotations(path).label, lab)
    assert [p.name for p in tmp_path.iterdir()] == ["ann.h5"]


def test_save_reaches_the_disk_before_the_rename(tmp_path, monkeypatch):
    """The temporary file is fsynced before it replaces the earlier file (an OS crash or power cut
    must leave the old or the new annotations, never an empty file), and the folder after."""
    import os

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    save_annotations(tmp_path / "ann.h5", Annotations(np.ones((1, 1, 1, 1), np.uint8), 32, (32, 32)))
    assert events == ["fsync", "replace", "fsync"]


def test_save_never_replaces_the_scan_or_another_file(tmp_path):
    """Saving annotations over the scan they belong to, or any file that is not an annotation
    file, is refused and leaves that file as it was; an earlier annotation file is replaced."""
    import h5py

    scan = tmp_path / "scan.h5"
    with h5py.File(scan, "w") as f:
        f["1.1/measurement/pco_ff"] = np.ones((2, 4, 4), np.uint16)
    before = scan.read_bytes()
    lab = np.ones((1, 2, 1, 1), np.uint8)
    with pytest.raises(WeakbeamError, match=r"scan\.h5: is the input being read"):
        save_annotations(scan, Annotations(lab, 32, (4, 4), source=str(scan)))
    with pytest.raises(WeakbeamError, match=r"scan\.h5: exists and is not an annotation file"):
        save_annotations(scan, Annotations(lab, 32, (4, 4)))
    text = tmp_path / "notes.h5"
    text.write_text("my notes")
    with pytest.raises(WeakbeamError, match="notes.h5"):
        save_annotations(text, Annotations(lab, 32, (4, 4)))
    assert scan.read_bytes() == before and text.read_text() == "my notes"
    ann = tmp_path / "ann.h5"
    save_annotations(ann, Annotations(lab, 32, (4, 4)))
    save_annotations(ann, Annotations(2 * lab, 32, (4, 4)))
    assert load_annotations(ann).counts() == {1: 0, 2: 2}


def test_load_annotations_bad_files(tmp_path):
    with pytest.raises(WeakbeamError, match="not found"):
        load_annotations(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(WeakbeamError, match="bad.h5"):
        load_annotations(bad)


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os

    path = tmp_path / "ann.h5"
    save_annotations(path, Annotations(np.zeros((1, 1, 1, 1), np.uint8), 32, (32, 32)))
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
