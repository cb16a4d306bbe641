"""Layer helpers shared by the widgets: the class palette and patch-resolution layer geometry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from ..core.patches import CLASS_COLOURS, CLASS_NAMES, grid_shape

if TYPE_CHECKING:
    import napari

# Metadata on a patch-resolution layer (read back by the annotation writer).
PATCH_KEY = "weakbeam_patch_size"
#: Plain metadata linking layers: the scan layer's id, and on each layer of ours its role and scan.
ID_KEY, ROLE_KEY, OF_KEY = "weakbeam_id", "weakbeam_role", "weakbeam_of"


def same(a: Any, b: Any) -> bool:
    """The same layer (napari may hand either a layer or its public proxy, which compare equal)."""
    return a is b or (a is not None and b is not None and a == b)


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


def add_own(viewer: "napari.Viewer", layer: Any) -> Any:
    """Add a layer made here and return it (not the proxy napari may hand back to plugins: the
    session holds and compares the layers themselves)."""
    viewer.add_layer(layer)
    return layer


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
    """Add a patch-resolution Labels layer over ``image`` in the class palette."""
    shape = patch_shape(image, patch_size)
    if data is None:
        data = np.zeros(shape, dtype=np.uint8)
    data = np.asarray(data, dtype=np.uint8).reshape(shape)
    scale, translate = patch_geometry(image, patch_size)
    layer = add_own(viewer, Labels(data, name=name, scale=scale, translate=translate, opacity=opacity, **same_axes(image)))
    layer.colormap = class_colormap()
    layer.metadata[PATCH_KEY] = int(patch_size)
    return layer


def add_patch_image(
    viewer: "napari.Viewer", image: "Image", patch_size: int, name: str, data: np.ndarray
) -> "Image":
    """Add a patch-resolution float Image layer (e.g. the weak-beam probability)."""
    scale, translate = patch_geometry(image, patch_size)
    data = np.asarray(data, dtype=np.float32).reshape(patch_shape(image, patch_size))
    layer = add_own(viewer, Image(
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
    ))
    layer.colorbar.visible = True  # drawn on the canvas whenever the layer is shown
    layer.metadata[PATCH_KEY] = int(patch_size)
    return layer
