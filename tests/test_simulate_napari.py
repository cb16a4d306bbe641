"""The bundled sample data, opened through napari's sample-data menu in a real viewer (Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam._napari._scan_layer import scan_from_layer
from napari_weakbeam.core.simulate import load_truth

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(
    "key, shape", [("one_layer", (1, 31, 256, 256)), ("multi_layer", (6, 21, 192, 192))]
)
def test_open_sample_in_viewer(make_napari_viewer, key, shape):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-weakbeam", key)
    assert len(layers) == 1 and layers[0] in viewer.layers
    layer = layers[0]
    assert layer.data.shape == shape and layer.data.dtype == np.uint16
    assert tuple(viewer.dims.axis_labels) == ("layer", "frame", "y", "x")
    scan = scan_from_layer(layer)  # the file reopened from the layer's plain metadata
    np.testing.assert_allclose(layer.metadata["angles"], scan.angles)
    assert np.all(np.diff(scan.angles, axis=1) > 0)
    assert layer.scale[-1] == pytest.approx(0.05) and layer.scale[0] == pytest.approx(2.0 if shape[0] > 1 else 1.0)
    # the file carries its ground truth, consistent with what napari shows
    truth = load_truth(scan.source)
    assert truth.classes(64).shape == (shape[0], shape[1], -(-shape[2] // 64), -(-shape[3] // 64))
    # a middle frame (strong beam somewhere) is much brighter than the first (weak beam)
    first = np.asarray(layer.data[0, 0]).mean()
    middle = np.asarray(layer.data[0, shape[1] // 2]).mean()
    assert middle > 3 * first


def test_sample_pixels_render(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open_sample("napari-weakbeam", "one_layer")
    viewer.dims.set_point(1, 15)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].mean() > 10
