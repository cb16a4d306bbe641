"""The widgets on real files: the bundled Bliss sample opened through the plugin's reader, and a
plain 3D (frames, rows, cols) image layer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam._napari._session import get_session
from napari_weakbeam.core.scanfiles.readers import open_scan

pytestmark = pytest.mark.gui
PLUGIN = "napari-weakbeam"


def _sample(name: str):
    from napari_weakbeam._napari.sample_data import sample_path

    return sample_path(name)


def test_multi_layer_sample_through_the_reader(make_napari_viewer, qtbot):
    from napari_weakbeam.core.simulate.truth import load_truth

    path = _sample("multi_layer.h5")
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin=PLUGIN)
    _, annotate = viewer.window.add_plugin_dock_widget(PLUGIN, "Annotate")
    _, rocking = viewer.window.add_plugin_dock_widget(PLUGIN, "Rocking curve")
    labels = annotate.start_annotating(image.name, 32)
    session = get_session(viewer)
    scan = session.scan
    assert scan.source == str(path) and scan.shape == image.data.shape  # the file, reopened from plain metadata
    assert scan.input_files() == open_scan(path).input_files()
    assert labels.data.shape == (6, 21, 6, 6)
    # Layers are 2 um apart and pixels 0.05 um: the labels follow the image's physical scale.
    np.testing.assert_allclose(labels.scale, (2.0, 1.0, 1.6, 1.6))
    np.testing.assert_allclose(labels.translate[-2:], np.asarray(image.translate[-2:]) + 15.5 * 0.05)

    # Layer 3, frame 20 (a rocking tail): the dims in world units map to the right indices.
    viewer.dims.set_point(0, 6.0)
    viewer.dims.set_point(1, 20)
    assert session.current_index() == (3, 20)
    annotate.label_frame(1)
    assert (labels.data[3, 20] == 1).all() and labels.data.sum() == 36

    # Suggestions for layer 3 agree with the simulator's ground truth where it is sure.
    annotate.suggest()
    qtbot.waitUntil(lambda: annotate._suggest_worker is None, timeout=60_000)
    truth = load_truth(path).classes(32)[3]
    suggested = session.suggestions.data[3]
    both = (truth > 0) & (suggested > 0)
    assert both.sum() > 100 and (suggested == truth)[both].mean() > 0.9
    assert not session.suggestions.data[:3].any()  # only the layer in view

    # Click (world position) -> patch -> the rocking curve of that patch, read from the file.
    from types import SimpleNamespace

    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    world = image.data_to_world((3, 0, 100, 40))
    assert session.patch_at(world) == (3, 3, 1)
    rocking.set_pick_mode(True)  # a click picks, never paints
    click = SimpleNamespace(type="mouse_press", position=tuple(world), pos=(50, 50), modifiers=set(), handled=False)
    mouse_press_callbacks(viewer, click)  # napari's own dispatch to the viewer's callbacks
    release = SimpleNamespace(type="mouse_release", position=tuple(world), pos=(50, 50), modifiers=set(), handled=False)
    mouse_release_callbacks(viewer, release)
    assert rocking.patch == (3, 3, 1)
    curve = rocking.curve
    expected = scan.frames[3, :, 96:128, 32:64].sum(axis=(-2, -1)).compute()
    np.testing.assert_allclose(curve, expected)
    assert rocking.canvas.axes.get_xlabel().startswith(scan.rocking_motor or "rocking")


def test_plain_3d_image_layer_is_a_one_layer_scan(make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.poisson(100, (7, 70, 90)).astype(np.uint16), name="stack")
    _, annotate = viewer.window.add_plugin_dock_widget(PLUGIN, "Annotate")
    labels = annotate.start_annotating("stack", 32)
    assert labels.data.shape == (7, 3, 3)  # ceil(70/32), ceil(90/32): edge patches are padded
    viewer.dims.set_point(0, 4)
    annotate.label_frame(2)
    assert (labels.data[4] == 2).all() and labels.data.sum() == 18
    scan = get_session(viewer).scan
    assert scan.shape == (1, 7, 70, 90)
    np.testing.assert_array_equal(scan.angles[0], np.arange(7))  # no angles given: frame numbers
