"""The drift measured on a static reference in the field of view: trend included.

The lines' continuity gives the drift up to its linear trend (:mod:`.drift`): a steady drift of
the sample looks, in every layer's data, like inclining every line by the same amount. A feature
that does not diffract and does not move with the crystal (a fiducial marker, a pore or
inclusion, the sample's edge) holds the whole drift. Given a box (rows and columns of the first
layer's pixels) that holds such a feature in every layer, :func:`reference_drift` finds, per
layer, its non-diffracting pixels in the box (the rocking curve's range, 3 x 3 mean, falls in two
classes at least ``OUTSIDE_CONTRAST`` apart, Otsu on its log: as the reconstruction finds the
grain's outline) and registers them on the first layer's (phase correlation, 1/20 pixel). Only
the box is read from each layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import WeakbeamError
from ..scanfiles.scan import check_frame
from .band_frames import low_range_class

MIN_BOX_PX = 8  # each side of the reference box at least this many pixels


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"R0:R1,C0:C1"`` (rows R0 to R1 - 1, columns C0 to C1 - 1) as (r0, r1, c0, c1)."""
    try:
        rows, cols = text.split(",")
        box = tuple(int(v) for part in (rows, cols) for v in part.split(":"))
    except ValueError:
        raise WeakbeamError(f"drift reference {text!r}: give the box as ROW0:ROW1,COL0:COL1, e.g. 40:120,300:380") from None
    if len(box) != 4:
        raise WeakbeamError(f"drift reference {text!r}: give the box as ROW0:ROW1,COL0:COL1, e.g. 40:120,300:380")
    return check_box(box)


def check_box(box: Any, frame_shape: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """``box`` (r0, r1, c0, c1) as ints, checked (and against ``frame_shape`` when given);
    WeakbeamError naming the problem."""
    try:
        r0, r1, c0, c1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise WeakbeamError(f"drift reference box {box!r}: need four integers (row0, row1, col0, col1)") from None
    if r0 < 0 or c0 < 0 or r1 - r0 < MIN_BOX_PX or c1 - c0 < MIN_BOX_PX:
        raise WeakbeamError(f"drift reference box rows {r0}:{r1}, columns {c0}:{c1}: need row0, col0 >= 0 and each side "
                            f"at least {MIN_BOX_PX} pixels")
    if frame_shape is not None and (r1 > frame_shape[0] or c1 > frame_shape[1]):
        raise WeakbeamError(f"drift reference box rows {r0}:{r1}, columns {c0}:{c1} reaches past the "
                            f"{frame_shape[0]} x {frame_shape[1]} frames")
    return r0, r1, c0, c1


def reference_image(frames: np.ndarray) -> np.ndarray | None:
    """The non-diffracting pixels of one layer's box (frames, rows, cols) as float32 (1 = not
    diffracting), smoothed by a 1-pixel Gaussian for sub-pixel registration; None where the box
    holds no two such classes (nothing non-diffracting in it, or nothing diffracting)."""
    smooth = ndi.uniform_filter(np.asarray(frames, dtype=np.float32), size=(1, 3, 3))
    low = low_range_class(smooth.max(axis=0) - smooth.min(axis=0))
    return None if low is None else ndi.gaussian_filter(low.astype(np.float32), 1.0)


def _shift(ref: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """How far (dy, dx) pixels the content of ``moving`` lies from ``ref``'s (phase correlation,
    1/20 pixel, means removed)."""
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(moving - moving.mean(), ref - ref.mean(), upsample_factor=20,
                                          normalization="phase")
    return np.asarray(shift, dtype=np.float64)


def reference_drift(scan: Any, box: Any, max_shift_px: float = 20.0) -> np.ndarray:
    """Drift (layers, 2) px (dy, dx) of each layer's content relative to the first's, from the
    static non-diffracting feature in ``box`` (r0, r1, c0, c1); WeakbeamError naming the layer
    where the box holds no such feature or the shift exceeds ``max_shift_px`` times the layer's
    distance from the first."""
    r0, r1, c0, c1 = check_box(box, tuple(scan.frame_shape))
    images = []
    for i in range(scan.n_layers):
        box_frames = scan.frames[i][:, r0:r1, c0:c1]
        valid = np.asarray(scan.valid_frames(i), dtype=bool)
        data = np.asarray(getattr(box_frames, "compute", lambda: box_frames)())[valid]
        img = reference_image(check_frame(data, f"{getattr(scan, 'source', '')} layer {i}"))
        if img is None:
            raise WeakbeamError(f"drift reference box rows {r0}:{r1}, columns {c0}:{c1}: layer {i} shows no "
                                "non-diffracting feature there (choose a box around a marker, pore or the sample's edge)")
        images.append(img)
    drift = np.zeros((len(images), 2))
    for i in range(1, len(images)):
        drift[i] = _shift(images[0], images[i])
        if np.abs(drift[i]).max() > max_shift_px * i:
            raise WeakbeamError(f"drift reference: layer {i} moved {np.abs(drift[i]).max():.1f} px from layer 0, more "
                                f"than max_drift_px ({max_shift_px:g}) per layer")
    return drift
