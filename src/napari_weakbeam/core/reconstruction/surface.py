"""The surface of a reconstructed mask, for 3D display (marching cubes, physical coordinates)."""

from __future__ import annotations

import numpy as np


def surface_mesh(mask: np.ndarray, scale: tuple[float, float, float],
                 translate: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes surface of a binary volume, in physical coordinates (vertices, faces)."""
    from skimage.measure import marching_cubes

    padded = np.pad(np.asarray(mask, dtype=np.float32), 1)
    if padded.shape[0] < 2 or not padded.any():
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts, faces, _n, _v = marching_cubes(padded, level=0.5, spacing=scale)
    verts = verts - np.asarray(scale) + np.asarray(translate)
    return verts, faces
