"""The status lines of the Predictions widget (the model, the frame in view, the whole scan) and
which frames show a prediction of the model in use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import WeakbeamError
from ._layers import as4d

if TYPE_CHECKING:
    from ._session import Session


def shown_frame(session: Session, predicted: np.ndarray | None) -> tuple[int, int] | None:
    """(layer, frame) in view when it shows a prediction of the model in use, else None."""
    try:
        layer, frame = session.current_index()
    except WeakbeamError:
        return None
    ok = session.predictions is not None and predicted is not None and predicted[layer, frame]
    return (layer, frame) if ok else None


def frame_text(session: Session, predicted: np.ndarray | None) -> str | None:
    """What the frame in view shows (None without a scan)."""
    try:
        layer, frame = session.current_index()
    except WeakbeamError:
        return None
    if shown_frame(session, predicted) is None:
        return f"layer {layer}, frame {frame}: not predicted yet"
    n = np.bincount(np.asarray(as4d(session.predictions.data)[layer, frame]).ravel(), minlength=3)
    return f"layer {layer}, frame {frame}: {n[1]} weak-beam, {n[2]} strong-beam patches"


def scan_text(session: Session) -> str:
    """What the whole scan shows once every frame is predicted."""
    pred = session.predictions
    n = np.bincount(np.asarray(pred.data).ravel(), minlength=3) if pred is not None else [0, 0, 0]
    return f"whole scan predicted: {n[1]} weak-beam, {n[2]} strong-beam patches"


def model_text(session: Session) -> str:
    c = session.classifier
    if c is None:
        return "Model: the shipped default (train or load one to change it)"
    return f"Model: {session.classifier_source} ({c.describe()})"


def mark_predicted(predicted: np.ndarray | None, shape: tuple[int, int], layer: int, frames: slice | int) -> np.ndarray:
    """``predicted`` (bool per (layer, frame); a new one for another shape) with ``frames`` set."""
    if predicted is None or predicted.shape != shape:
        predicted = np.zeros(shape, dtype=bool)
    predicted[layer, frames] = True
    return predicted
