"""Synthetic weak-beam layers with known dislocation lines, for the reconstruction tests.

Each layer: a rocking curve whose local peak moves across the field of view (so a frame is strong
beam in one region and weak beam in another), thin bright lines that light up only where the frame
is weak beam, deficits of those lines and thickness fringes in the strong beam, dark level ~100 ADU
and Poisson + read noise. The truth is the set of line pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line as draw_line

from napari_weakbeam.core.patches import STRONG_BEAM, WEAK_BEAM


def synth_layer(seed: int, n: int = 21, shape: tuple[int, int] = (128, 128), patch: int = 16,
                n_lines: int = 4, dark: float = 100.0, wb_level: float = 1200.0,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(frames uint16 (n, rows, cols), angles deg (n,), labels (n, gr, gc), truth core mask).

    ``wb_level``: peak weak-beam counts of the lines above the dark level (low: faint lines)."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    core = np.zeros(shape, bool)
    for _ in range(n_lines):
        r0, r1 = rng.integers(8, rows - 8, 2)
        c0, c1 = rng.integers(8, cols - 8, 2)
        rr, cc = draw_line(int(r0), int(c0), int(r1), int(c1))
        core[rr, cc] = True
    lines = ndi.gaussian_filter(core.astype(np.float64), 1.0)
    lines /= lines.max()
    xx = np.arange(cols)[None, :] * np.ones((rows, 1))
    peak = n / 2 + 3.0 * np.sin(xx / cols * 3.0 + seed)  # local peak (frame units), moves across x
    fringes = 0.2 * np.sin(xx / 6.0)
    frames, labels = [], []
    gr, gc = -(-rows // patch), -(-cols // patch)
    for k in range(n):
        u = np.abs(k - peak) / 1.5  # in local half widths
        sb = 2500 * np.exp(-0.5 * (u / 1.18) ** 2) * (1 - 0.6 * lines + fringes)
        wb = wb_level * lines * (u >= 2)
        level = dark + np.clip(sb + wb, 0, None)
        img = rng.poisson(level) + rng.normal(0, 3, shape)
        frames.append(np.clip(img, 0, 65535).astype(np.uint16))
        u_patch = np.pad(u, ((0, gr * patch - rows), (0, gc * patch - cols)), mode="edge")
        u_min = u_patch.reshape(gr, patch, gc, patch).min(axis=(1, 3))
        labels.append(np.where(u_min >= 2, WEAK_BEAM, STRONG_BEAM).astype(np.uint8))
    angles = 10.0 + 0.002 * np.arange(n)
    return np.asarray(frames), angles, np.asarray(labels), core


def truth_points(cores: list[np.ndarray], positions: np.ndarray, voxel: tuple[float, float, float]) -> np.ndarray:
    """The truth core pixels of every layer as (N, 3) z, y, x micrometres."""
    pts = []
    for z, core in zip(positions, cores):
        r, c = np.nonzero(core)
        pts.append(np.column_stack([np.full(r.shape, z), r * voxel[1], c * voxel[2]]))
    return np.concatenate(pts)


def finish_one_layer(image: np.ndarray, params, **per_layer) -> tuple[np.ndarray, np.ndarray]:
    """``finish_segmentation`` of one layer ``image`` under a little noise (seed 0), with
    ``per_layer`` keyword lists (``tails=[...]``, ``counts=[...]``) or None: (the skeleton's rows,
    the mask)."""
    from napari_weakbeam.core.reconstruction.reconstruct import finish_segmentation
    from napari_weakbeam.core.reconstruction.segmentation import noise_level

    img = np.maximum(np.random.default_rng(0).normal(0, 1, image.shape), 0).astype(np.float32) + image
    m, s = np.zeros((1,) + image.shape, bool), np.zeros((1,) + image.shape, bool)
    finish_segmentation(img[None], m, s, params, np.array([noise_level(img)]), **per_layer)
    return np.nonzero(s[0])[0], m[0]


def finish_on_off_none(image: np.ndarray, off, name: str, value) -> tuple[dict, dict]:
    """:func:`finish_one_layer` of ``image`` three ways: "on" (default parameters, with the
    per-layer keyword ``name`` = [``value``]), "off" (parameters ``off``, with it) and "none"
    (default parameters, without it): the skeletons' rows and the masks, by way."""
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams

    out, masks = {}, {}
    for way, params, v in (("on", ReconstructionParams(), [value]), ("off", off, [value]),
                           ("none", ReconstructionParams(), None)):
        out[way], masks[way] = finish_one_layer(image, params, **{name: v})
    return out, masks
