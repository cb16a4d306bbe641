"""Layer helpers shared by the widgets: the class palette, patch-resolution Labels geometry, and the
Scan behind an Image layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from ..core.errors import WeakbeamError
from ..core.patches import CLASS_COLOURS, CLASS_NAMES, grid_shape
from ..core.scanfiles.scan import Scan

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

SCAN_KEY = "weakbeam_scan"
# Metadata on a patch-resolution Labels layer (read back by the annotation writer).
PATCH_KEY = "weakbeam_patch_size"


def class_colormap() -> DirectLabelColormap:
    """The fixed WB / SB palette (0 and anything else transparent)."""
    colours: dict[Any, Any] = {None: "transparent", 0: "transparent"}
    colours.update(CLASS_COLOURS)
    return DirectLabelColormap(color_dict=colours)


def class_legend() -> str:
    """Rich-text legend of the class colours, for widget labels."""
    return " ".join(
        f'<span style="color:{CLASS_COLOURS[c]}">&#9632;</span> {CLASS_NAMES[c]}' for c in (1, 2)
    )


def scan_from_layer(layer: "Image") -> Scan:
    """The Scan behind an Image layer: the reader's (metadata ``weakbeam_scan``) or one built from
    the layer's array (frames, rows, cols) or (layers, frames, rows, cols) and ``angles``."""
    scan = layer.metadata.get(SCAN_KEY)
    if isinstance(scan, Scan):
        return scan
    if getattr(layer, "multiscale", False):
        raise WeakbeamError(f"layer {layer.name!r}: multiscale images are not supported as a scan")
    data = layer.data
    if data.ndim not in (3, 4):
        raise WeakbeamError(
            f"layer {layer.name!r}: a scan needs (frames, rows, cols) or (layers, frames, rows, cols), "
            f"got shape {tuple(data.shape)}"
        )
    frames = da.asarray(data)
    if frames.ndim == 3:
        frames = frames[None]
    n_layers, n_frames = frames.shape[:2]
    angles = layer.metadata.get("angles")
    if angles is None:
        angles = np.tile(np.arange(n_frames, dtype=float), (n_layers, 1))
    angles = np.asarray(angles, dtype=float)
    if angles.ndim == 1 and angles.size == n_frames:
        angles = np.tile(angles, (n_layers, 1))
    positions = layer.metadata.get("layer_positions", np.arange(n_layers, dtype=float))
    scan = Scan(
        frames=frames,
        angles=angles,
        layer_positions=np.asarray(positions, dtype=float).reshape(-1)[:n_layers],
        source=str(layer.metadata.get("source", layer.name)),
    )
    layer.metadata[SCAN_KEY] = scan
    return scan


def patch_geometry(image: "Image", patch_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Scale and translate of a patch-resolution layer over ``image``.

    napari puts pixel centres at integer data coordinates, so a label pixel covering patch (i, j)
    has its centre at image pixel ``i * P + (P - 1) / 2``.
    """
    scale = np.asarray(image.scale, dtype=float).copy()
    translate = np.asarray(image.translate, dtype=float).copy()
    translate[-2:] += (patch_size - 1) / 2 * scale[-2:]
    scale[-2:] *= patch_size
    return tuple(scale), tuple(translate)


def same_axes(image: "Image") -> dict[str, Any]:
    """Axis labels and units of ``image``, for layers drawn over it (napari warns on a mismatch)."""
    return {"axis_labels": tuple(image.axis_labels), "units": tuple(image.units)}


def patch_shape(image: "Image", patch_size: int) -> tuple[int, ...]:
    """Shape of a patch-resolution array over ``image``: leading axes, then the patch grid."""
    shape = tuple(int(s) for s in image.data.shape)
    return shape[:-2] + grid_shape(shape[-2:], patch_size)


def as4d(data: np.ndarray) -> np.ndarray:
    """(frames, gr, gc) or (layers, frames, gr, gc) -> a 4D view (layers, frames, gr, gc)."""
    return data if data.ndim == 4 else data[None]


def add_patch_labels(
    viewer: "napari.Viewer",
    image: "Image",
    patch_size: int,
    name: str,
    data: np.ndarray | None = None,
    opacity: float = 0.5,
) -> "Labels":
    """Add (or reuse) a patch-resolution Labels layer over ``image`` in the class palette."""
    shape = patch_shape(image, patch_size)
    if data is None:
        data = np.zeros(shape, dtype=np.uint8)
    data = np.asarray(data, dtype=np.uint8).reshape(shape)
    scale, translate = patch_geometry(image, patch_size)
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        layer.scale, layer.translate = scale, translate
    else:
        layer = viewer.add_labels(
            data, name=name, scale=scale, translate=translate, opacity=opacity, **same_axes(image)
        )
    layer.colormap = class_colormap()
    layer.metadata[PATCH_KEY] = int(patch_size)
    return layer


def add_patch_image(
    viewer: "napari.Viewer", image: "Image", patch_size: int, name: str, data: np.ndarray
) -> "Image":
    """Add (or update) a patch-resolution float Image layer (e.g. the weak-beam probability)."""
    scale, translate = patch_geometry(image, patch_size)
    data = np.asarray(data, dtype=np.float32).reshape(patch_shape(image, patch_size))
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        return layer
    layer = viewer.add_image(
        data,
        name=name,
        scale=scale,
        translate=translate,
        colormap="magma",
        contrast_limits=(0.0, 1.0),
        opacity=0.6,
        blending="additive",
        visible=False,
        **same_axes(image),
    )
    layer.colorbar.visible = True  # drawn on the canvas whenever the layer is shown
    return layer
