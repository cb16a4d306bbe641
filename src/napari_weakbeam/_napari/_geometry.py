"""3D geometry of the reconstruction display, without Qt: the camera fitted to the results, point
sizes, the marching-cubes surface, and 3D layers that follow the frame slider."""

from __future__ import annotations

from typing import Any

import numpy as np

VIEW_ANGLES = (-20.0, 30.0, 120.0)  # oblique: the stacking of the layers shows (napari >= 0.7 angles)


def camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _world(extent: Any, ndim: int) -> np.ndarray:
    """A layer's world extent padded in front to the viewer's dimensions."""
    e = np.asarray(extent, dtype=float)
    return np.concatenate([np.zeros((2, ndim - e.shape[1])), e], axis=1) if e.shape[1] < ndim else e


def fit_camera(viewer: Any, layers: list[Any]) -> None:
    """Centre and zoom the 3D view on ``layers`` (the hidden 4D scan would otherwise set the zoom).

    ``reset_view`` fits every layer; the zoom is then scaled by how much smaller the extent of
    ``layers`` is, and the camera centred on them.
    """
    angles = camera(viewer).angles
    viewer.reset_view()
    cam = camera(viewer)
    cam.angles = angles
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
        cam.zoom = cam.zoom * 0.95 * size_full / size_mine
    cam.center = tuple((lo + hi) / 2)


def point_size(voxel_zyx: tuple[float, float, float]) -> float:
    """Points as large as a voxel reads in 3D: the larger of 3 pixels and half the layer spacing."""
    return max(3.0 * max(voxel_zyx[1], voxel_zyx[2]), 0.5 * voxel_zyx[0])


def follow_frame(layers: list[Any], frame: float) -> None:
    """Move 4D surfaces and Shapes paths (which, unlike a volume, cannot repeat over frames) to the
    frame in view."""
    for layer in layers:
        if layer.name.endswith("surface"):
            verts, faces = layer.data[0], layer.data[1]
            if len(verts) and verts.shape[1] == 4 and verts[0, 1] != frame:
                verts = verts.copy()
                verts[:, 1] = frame
                layer.data = (verts, faces) + tuple(layer.data[2:])
        elif layer.name.endswith("lines") and len(layer.data):
            if layer.data[0].shape[1] == 4 and layer.data[0][0, 1] != frame:
                paths = [np.asarray(p).copy() for p in layer.data]
                for p in paths:
                    p[:, 1] = frame
                layer.data = paths
