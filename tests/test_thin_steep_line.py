"""A thin line running steeply across DFXM's wide columns alternates bright and dim pixels along
the rows (one column step every two rows, the line's centre now mid-column, now at its border).
``adaptive``'s object floor (``object_fraction`` of the local peak) tested pixel by pixel broke
it into dots that the size rule removed (dfxm-geo short range seed 1000: recall 0.36 end to end);
it now tests each pixel's mean along the rows too (``segmentation.FLOOR_ROW_SIGMA``)."""

from __future__ import annotations

import numpy as np

from napari_weakbeam.core.reconstruction import segmentation
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
from napari_weakbeam.core.reconstruction.segmentation import segment_points

ROWS = np.arange(20, 100)


def _aliased_line(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 2.0, (128, 64)).astype(np.float32)
    cols = 10 + (ROWS - 20) // 2
    image[ROWS, cols] = np.where(ROWS % 2 == 0, 3000.0, 450.0)  # bright, dim, bright, ...
    image[ROWS[1::2], cols[1::2] + 1] += 150.0  # the dim rows' light spills into the next column
    return image


def _rows_found(image: np.ndarray) -> float:
    params = ReconstructionParams(pixel_aspect=3.2)
    _, _, skel = segment_points(image, params, (0.0, 2.0))
    return float(np.isin(ROWS, np.flatnonzero(skel.any(axis=1))).mean())


def test_an_aliased_steep_line_stays_whole():
    assert _rows_found(_aliased_line()) >= 0.9


def test_the_pixel_by_pixel_floor_broke_it(monkeypatch):
    monkeypatch.setattr(segmentation, "FLOOR_ROW_SIGMA", 0.0)
    assert _rows_found(_aliased_line()) < 0.5
