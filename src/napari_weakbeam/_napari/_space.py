"""3D layers in the scan's world: axes (z, frame, y, x) with the scan layer's units.

The scan is a 4D layer (layer position z in um, frame, y, x); napari aligns layers on their last
axes and warns ("Inconsistent units across layers") when units differ. A reconstruction (z, y, x)
is therefore added with the scan's four axes: its volume repeated over the frame axis (a
zero-copy broadcast, so it shows whatever the frame slider says), its points and lines shown from
every frame (``projection_mode="all"``). The 3D view then displays z, y, x in micrometres and the
only slider left is the frame of the scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

AXES_3D = ("z", "frame", "y", "x")
UM = "um"


def space_of(scan_layer: "Image | None") -> dict[str, Any]:
    """Axis labels and units of the world the 3D layers join, and the number of frames.

    The last three axes take the scan layer's units (um where its pixel size is known), so napari
    never sees two units on one axis."""
    if scan_layer is None or scan_layer.ndim < 3:
        return {"axis_labels": AXES_3D, "units": (UM, "", UM, UM), "n_frames": 1}
    units = (UM,) + tuple(scan_layer.units)[-3:]
    return {"axis_labels": AXES_3D, "units": units, "n_frames": int(scan_layer.data.shape[-3])}


def volume_4d(volume: np.ndarray, n_frames: int) -> np.ndarray:
    """(z, y, x) -> a read-only (z, frames, y, x) view that repeats the volume over the frames."""
    v = np.asarray(volume)
    return np.broadcast_to(v[:, None], (v.shape[0], n_frames) + v.shape[1:])


def points_4d(points_zyx: np.ndarray, frame: float = 0.0) -> np.ndarray:
    """(N, 3) z, y, x -> (N, 4) z, frame, y, x."""
    p = np.asarray(points_zyx, dtype=float).reshape(-1, 3)
    return np.insert(p, 1, frame, axis=1)


def scale_4d(zyx: tuple[float, float, float]) -> tuple[float, float, float, float]:
    return (float(zyx[0]), 1.0, float(zyx[1]), float(zyx[2]))


def show_3d(viewer: "napari.Viewer", names_shown: list[str]) -> None:
    """Hide every other layer, display z, y, x in 3D with a scale bar in the layers' units."""
    for layer in viewer.layers:
        if layer.name not in names_shown:
            layer.visible = False
    ndim = viewer.dims.ndim
    if ndim == 4:
        viewer.dims.axis_labels = AXES_3D
        viewer.dims.order = (1, 0, 2, 3)  # frame first: z, y, x displayed
    viewer.dims.ndisplay = 3
    viewer.canvas.overlays.scale_bar.visible = True
