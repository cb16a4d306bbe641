"""Per-frame intensity normalisation that transfers between beamtimes.

Absolute counts are not comparable between datasets: exposure, detector gain and dark level all
change. What separates weak beam from strong beam inside one frame is the *shape* of the intensity
distribution (a dark field with sparse bright lines versus a bright, nearly uniform field), so each
frame is mapped by its own robust affine transform: ``y = (x - q_low) / (q_high - q_low)``, where
``q_low`` (a dark estimate) and ``q_high`` (a bright-level estimate) are percentiles of that frame.
This is exactly invariant to dark offsets and gain/exposure factors (up to photon noise), needs no
other frame (live use during an experiment) and never leaks statistics between train and test
splits. A soft compression ``asinh(c * y) / asinh(c)`` then tames the dynamic range of bright
dislocation lines. The parameters live in the model file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import WeakbeamError, check_finite

METHOD = "frame-percentile-asinh"
#: Scan-aware models: the same mapping with levels of the whole layer (core.classification.scan_context), never per
#: frame, so a peak frame and a tail frame keep their difference in brightness.
LAYER_METHOD = "layer-levels-asinh"


@dataclass(frozen=True)
class Normalisation:
    """Parameters of the per-frame normalisation (stored in model files)."""

    low_percentile: float = 1.0
    high_percentile: float = 99.5
    compression: float = 4.0
    subsample: int = 4  # percentiles from every n-th pixel along each axis (speed only)
    method: str = METHOD

    def to_dict(self) -> dict:
        """Plain dict for a model file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Normalisation":
        """Inverse of :meth:`to_dict`; an unknown method is a user-facing error."""
        if d.get("method", METHOD) not in (METHOD, LAYER_METHOD):
            raise WeakbeamError(f"unknown intensity normalisation {d.get('method')!r} in the model file")
        known = {k: d[k] for k in ("low_percentile", "high_percentile", "compression", "subsample", "method") if k in d}
        return cls(**known)

    def levels(self, frame: np.ndarray) -> tuple[float, float]:
        """Dark and bright levels (q_low, q_high) of one frame."""
        s = max(1, int(self.subsample))
        sample = frame[::s, ::s] if min(frame.shape[-2:]) >= 16 * s else frame
        lo, hi = np.percentile(sample, [self.low_percentile, self.high_percentile])
        return float(lo), float(hi)

    def __call__(self, frame: np.ndarray, what: str = "frame") -> np.ndarray:
        """Normalise one frame (rows, cols) -> float32 of the same shape."""
        return normalise_frame(frame, self, what)


def normalise_frame(frame: np.ndarray, norm: Normalisation | None = None, what: str = "frame") -> np.ndarray:
    """Normalise one detector frame (rows, cols) to float32, see the module docstring."""
    norm = norm or Normalisation()
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise WeakbeamError(f"{what} must be 2D (rows, cols), got shape {frame.shape}")
    if frame.size == 0:
        raise WeakbeamError(f"{what} is empty (shape {frame.shape})")
    if not (np.issubdtype(frame.dtype, np.number) or frame.dtype == bool):
        raise WeakbeamError(f"{what} has non-numeric dtype {frame.dtype}")
    check_finite(frame, what)
    x = frame.astype(np.float32, copy=False)
    lo, scale = frame_levels(x, norm)
    return apply_levels(x, lo, scale, norm)


def frame_levels(frame: np.ndarray, norm: Normalisation) -> tuple[float, float]:
    """Dark level and scale (q_high - q_low, never zero) of one frame."""
    lo, hi = norm.levels(frame)
    scale = hi - lo
    if not scale > 0:  # a flat frame: fall back to the full range, then to 1
        scale = float(np.max(frame) - lo) or 1.0
    return lo, float(scale)


def apply_levels(x: np.ndarray, lo: float, scale: float, norm: Normalisation) -> np.ndarray:
    """Map raw values with given levels (numpy, float32 out); see :func:`normalise_frame`."""
    y = (np.asarray(x, dtype=np.float32) - np.float32(lo)) * np.float32(1.0 / scale)
    c = np.float32(norm.compression)
    if c > 0:
        y = np.arcsinh(c * y) * np.float32(1.0 / np.arcsinh(c))
    return y.astype(np.float32, copy=False)
