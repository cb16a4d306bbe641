"""The Predictions widget's files: what "Export" writes (the ``weakbeam classify`` file, with the
predictions shown so far) and "Load" shows (a file made by ``weakbeam classify`` for this scan)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.atomic import check_replaceable
from ..core.errors import WeakbeamError
from ._layers import as4d

if TYPE_CHECKING:
    from ._session import Session


def export_inputs(session: Session, path: str | Path, predicted: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """(label, prob, done per frame) shown now, after checking that ``path`` may be written."""
    scan = session.require_scan()
    check_replaceable(path, "predictions", group="predictions", inputs=scan.input_files())
    shape = session.label_shape()
    pred, prob = session.predictions, session.probability
    label = np.array(as4d(pred.data)) if pred is not None else np.zeros(shape, np.uint8)
    probability = np.array(as4d(prob.data)) if prob is not None else np.zeros(shape, np.float32)
    done = predicted.copy() if predicted is not None else np.zeros(shape[:2], bool)
    return label, probability, done


def read_predictions(session: Session, path: str | Path) -> Any:
    """A predictions file made for the session's scan at its patch size (else a one-line error)."""
    from ..core.classification.predictions import load_predictions

    loaded = load_predictions(path)
    loaded.check_matches(session.require_scan(), what=f"predictions {Path(path).name}")
    if loaded.patch_size != session.patch_size:
        raise WeakbeamError(
            f"{Path(path).name}: predictions at patch size {loaded.patch_size}, but the annotations use "
            f"{session.patch_size}; start annotating at patch size {loaded.patch_size} first"
        )
    return loaded
