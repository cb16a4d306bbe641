"""User-facing errors: one line that names the problem, never a traceback for a user mistake."""

from __future__ import annotations

import numpy as np


class WeakbeamError(Exception):
    """A problem with the user's input (file, dataset path, parameters, labels, model file).

    The message is one line, names the file or value at fault and says what is wrong. The CLI
    prints it as ``error: <message>`` and exits with status 2; the napari widgets show it as a
    notification.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def check_finite(values: np.ndarray, what: str) -> None:
    """The one check for NaN and infinite values (frames, maps, points): a one-line error naming
    ``what`` and how many values are bad."""
    a = np.asarray(values)
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        n = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise WeakbeamError(f"{what} holds {n} NaN or infinite values: replace or mask them first")
