"""What the Annotate widget does to the labels besides painting: whole frames (buttons and the keys
W / S / C), the rocking-curve suggestions (summary, accepting them), and the annotation files
(save, and load only after asking when unsaved labels would be replaced)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..core.classification.annotations import Annotations, load_annotations, save_annotations
from ..core.errors import WeakbeamError
from ..core.patches import STRONG_BEAM, UNLABELLED, WEAK_BEAM
from .writer import layer_to_annotations

if TYPE_CHECKING:
    from napari.layers import Labels

    from ._session import Session

#: Keys bound on the annotation layer (none of them is a napari Labels-layer default).
SHORTCUTS = {"W": WEAK_BEAM, "S": STRONG_BEAM, "C": UNLABELLED}


def label_current_frame(session: Session, value: int) -> None:
    """Label every patch of the frame in view with ``value`` (0 clears it)."""
    layer, frame = session.current_index()
    session.set_frame_labels(layer, frame, value)


def bind_frame_keys(labels: "Labels", session: Session, on_error: Callable[[BaseException], None]) -> None:
    """W / S / C on the annotation layer label or clear the frame in view."""
    for key, value in SHORTCUTS.items():

        def handler(layer: Any, value: int = value) -> None:
            try:
                label_current_frame(session, value)
            except WeakbeamError as exc:
                on_error(exc)

        labels.bind_key(key, handler, overwrite=True)


def suggestion_summary(layer: int, labels: np.ndarray, no_peak: int, n_patches: int, n_frames: int) -> str:
    """What Suggest found, and why when it found nothing."""
    n = np.bincount(labels.ravel(), minlength=3)
    if n[1] or n[2]:
        return (f"suggested {n[1]} weak-beam and {n[2]} strong-beam patches in layer {layer}: "
                f"check them, then 'Accept suggestions'")
    if no_peak == n_patches:
        return (f"no suggestion in layer {layer}: none of its {n_patches} patches has a clear rocking peak "
                f"(a peak 8x above the noise that falls to half height within the {n_frames} frames); "
                f"label frames by hand (W / S)")
    return (f"no suggestion in layer {layer}: {no_peak} of {n_patches} patches have no clear rocking peak and "
            f"the others sit between the strong-beam and weak-beam ranges; label frames by hand (W / S)")


def accept_suggestions(session: Session) -> tuple[int, int]:
    """Copy the suggestions into the unlabelled patches of the layer in view (one undo step), then
    discard them; returns (patches taken, layer)."""
    suggestions = session.suggestions
    if suggestions is None:
        raise WeakbeamError("no suggestions yet: press 'Suggest' first")
    layer, _ = session.current_index()
    ann = session.annotation_array()[layer]
    sug = suggestions.data.reshape((-1,) + suggestions.data.shape[-3:])[layer]
    taken = 0
    with session.require_annotations().block_history():
        for frame in range(ann.shape[0]):
            take = (ann[frame] == 0) & (sug[frame] != 0)
            if take.any():
                taken += session.set_frame_labels(layer, frame, sug[frame], where=take)
    session.clear_suggestions()
    return taken, layer


def save_labels(session: Session, path: str | Path) -> Annotations:
    """Save the annotation layer (atomically); returns what was saved."""
    labels = session.require_annotations()
    ann = layer_to_annotations(labels.data, labels.metadata)
    save_annotations(path, ann)
    return ann


def read_labels(session: Session, path: str | Path) -> Annotations:
    """Annotations saved for the session's scan (a file made for another scan is refused); at
    another patch size, annotating restarts at that size (refused over painted labels)."""
    scan = session.require_scan()
    ann = load_annotations(path)
    ann.check_matches(scan, what=f"annotations {Path(path).name}")
    if ann.patch_size != session.patch_size:
        assert session.scan_layer is not None
        current = session.annotations
        if current is not None and not np.any(current.data):
            session.viewer.layers.remove(current)
        session.set_scan_layer(session.scan_layer, ann.patch_size)
    return ann


def may_replace(parent: Any, session: Session, saved: np.ndarray | None, name: str) -> bool:
    """Loading replaces the painted labels: ask first when some were painted since the last save or
    load (an unsaved afternoon of labelling must not vanish with one click)."""
    from ._files import ask_yes_no

    current = session.annotations
    if current is None or not np.any(current.data):
        return True
    if saved is not None and saved.shape == current.data.shape and np.array_equal(saved, current.data):
        return True
    n = int(np.count_nonzero(current.data))
    return ask_yes_no(parent, "Load annotations",
                      f"Replace the {n} painted patch labels, not saved since they changed, with those of {name}?")


def set_brush(session: Session, value: int) -> None:
    """Paint ``value`` (1 = weak beam, 2 = strong beam) with a one-patch brush."""
    labels = session.annotations
    if labels is None:
        return
    labels.selected_label = value
    labels.brush_size = 1
    labels.mode = "paint"
    session.viewer.layers.selection.active = labels


def counts_text(session: Session) -> str | None:
    """The labelled patches of the scan and of the frame in view (None: no frame to count)."""
    if session.annotations is None:
        return "No annotation layer yet: pick the scan and press Start."
    total = session.counts()
    try:
        layer, frame = session.current_index()
        here = np.bincount(session.annotation_array()[layer, frame].ravel(), minlength=3)
    except WeakbeamError:
        return None
    return (f"Labelled patches: <b>{total[1]}</b> weak beam, <b>{total[2]}</b> strong beam"
            f"<br>This frame (layer {layer}, frame {frame}): {here[1]} WB, {here[2]} SB")
