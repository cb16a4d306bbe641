"""A physics self-check of predictions that needs no labels.

Two rules hold for any scan, whatever the material or beamline:

1. at the frame where a patch's own rocking curve peaks, the patch is strong beam;
2. P(weak beam) rises with the angular distance from the patch's own curve centre: moving away
   from the peak on either side it never falls back by much.

A patch breaks the rules when it is called weak beam at its own peak (P(WB) >= 0.5), or when on one
side of its peak P(WB) drops by more than ``DROP`` between a frame and a frame further out. Only
patches whose curve has a clear peak inside the scan (not at its first or last frame) are checked.
A share of breaking patches above ``WARN_SHARE`` means the model and the curves disagree: the
model has not seen data like this scan, and fine-tuning (``weakbeam train --adapt``) is advised.

It also counts the patches whose rocking curve the scan stops before one tail (no frame at
u <= -2 or none at u >= 2, u the offset from the patch's own peak in half widths): there the
reconstruction counts the frames beyond the half maximum as weak beam
(core/reconstruction/band_frames.py) and is less certain (docs/user-guide.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..patches import cut_before_a_tail
from .scan_context import LayerContext

#: A fall of P(WB) by more than this moving away from the peak breaks rule 2.
DROP = 0.5
#: Warn when more than this share of the checked patches break a rule.
WARN_SHARE = 0.05


@dataclass
class SelfCheck:
    """Counts over the checked patches (one per patch and layer)."""

    checked: int = 0
    wb_at_peak: int = 0
    not_rising: int = 0
    broken: int = 0
    curves: int = 0  # patches with a significant rocking curve
    cut: int = 0  # of those, the curves the scan stops before one tail

    def __add__(self, other: "SelfCheck") -> "SelfCheck":
        return SelfCheck(self.checked + other.checked, self.wb_at_peak + other.wb_at_peak,
                         self.not_rising + other.not_rising, self.broken + other.broken,
                         self.curves + other.curves, self.cut + other.cut)

    @property
    def share_broken(self) -> float:
        """Share of checked patches that break a rule (NaN when none could be checked)."""
        return self.broken / self.checked if self.checked else float("nan")

    @property
    def consistent(self) -> float:
        return 1.0 - self.share_broken

    def summary(self) -> str:
        """One line for the CLI and the widgets."""
        if not self.checked:
            return "self-check: no patch has a clear rocking-curve peak inside the scan, nothing to check"
        cut = (f"; the scan stops before one tail of {100 * self.cut / self.curves:.0f} % of the patches' rocking "
               "curves: the reconstruction there is less certain (docs/user-guide.md)") if self.cut else ""
        return (f"self-check: {100 * self.consistent:.1f} % of {self.checked} patches follow the rocking-curve physics "
                f"({self.wb_at_peak} weak beam at their own peak, {self.not_rising} with P(WB) falling away from it){cut}")

    def warning(self, share: float = WARN_SHARE) -> str | None:
        """A one-line warning when the model and the curves disagree on more than ``share``."""
        if self.checked and self.share_broken > share:
            return (f"the model and the rocking curves disagree on {100 * self.share_broken:.1f} % of patches "
                    f"(more than {100 * share:.0f} %): this scan differs from what the model knows; "
                    f"adapt it (weakbeam train --adapt SCAN, or 'Adapt to this scan') and check again")
        return None


def check_layer(ctx: LayerContext, prob: np.ndarray) -> SelfCheck:
    """Check one layer's P(weak beam) (frames, gr, gc) against its rocking-curve context."""
    shape = ctx.curve_shape()
    valid = np.flatnonzero(ctx.valid & np.isfinite(prob).all(axis=(1, 2)))
    if len(valid) < 3:
        return SelfCheck()
    curves = shape["significant"]
    n_curves, n_cut = int(curves.sum()), int((curves & cut_before_a_tail(ctx.offsets(shape))).sum())
    checked = shape["significant"] & ~shape["edge"]
    n = int(checked.sum())
    if n == 0:
        return SelfCheck(curves=n_curves, cut=n_cut)
    k0 = shape["peak_frame"]
    at_peak = np.take_along_axis(prob, k0[None], axis=0)[0]
    wb_at_peak = checked & (at_peak >= 0.5)

    order = valid[np.argsort(ctx.angles[valid], kind="stable")]
    p = prob[order]  # (m, gr, gc) by angle
    phi = ctx.angles[order]
    centre = shape["centre"][None]
    above = phi[:, None, None] >= centre
    # rule 2 on each side: walking outwards, P(WB) may not fall more than DROP below its running max
    fall = np.zeros(prob.shape[1:], bool)
    for side in (above, ~above):
        seq = np.where(side, p, np.nan)
        if side is above:
            walk = seq  # increasing angle = outwards above the centre
        else:
            walk = seq[::-1]
        run = np.fmax.accumulate(np.nan_to_num(walk, nan=-1.0), axis=0)
        drop = run - np.where(np.isnan(walk), np.inf, walk)
        fall |= (drop > DROP).any(axis=0)
    not_rising = checked & fall
    broken = wb_at_peak | not_rising
    return SelfCheck(n, int(wb_at_peak.sum()), int(not_rising.sum()), int(broken.sum()), n_curves, n_cut)


def check_predictions(predictions) -> SelfCheck | None:
    """Self-check a whole predictions file (core.classification.predictions.Predictions) from the patch curves it
    stores; None for files that hold no curves (written by older versions)."""
    total = SelfCheck()
    any_context = False
    for layer in range(predictions.label.shape[0]):
        ctx = predictions.layer_context(layer)
        if ctx is None:
            continue
        any_context = True
        total = total + check_layer(ctx, predictions.prob[layer])
    return total if any_context else None
