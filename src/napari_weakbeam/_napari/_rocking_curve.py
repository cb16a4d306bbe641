"""The rocking curve of a patch: its values (from the file, or the frames followed live), the layer's
background floor and top, the normalisation, the plot, and the outline of the picked patch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.patches import CLASS_COLOURS, STRONG_BEAM, WEAK_BEAM
from ._follow import live_layer, shade_weak_beam
from ._layers import ID_KEY, OF_KEY, ROLE_KEY
from ._plot import FOREGROUND

if TYPE_CHECKING:
    from ._session import Session

FLOOR_PERCENTILE = 2.0  # of a layer's pixels over all frames: the background outside the grain
TOP_PERCENTILE = 99.9
LEVEL_FRAMES = 9  # frames sampled for the floor and top of a layer
MIN_CONTRAST = 0.05  # a patch whose peak is below 5 % of the layer's range is drawn near zero
MARKER_COLOUR = "#e5c07b"
UNKNOWN_COLOUR = "#8a8f98"


def patch_curve(scan: Any, layer: int, grid_row: int, grid_col: int, patch_size: int) -> np.ndarray:
    """Integrated intensity (sum) of one patch in every frame of ``layer``: float64 (frames,)."""
    p = patch_size
    block = scan.frames[layer, :, grid_row * p : (grid_row + 1) * p, grid_col * p : (grid_col + 1) * p]
    return np.asarray(block.sum(axis=(-2, -1), dtype=np.float64).compute())


def layer_levels(scan: Any, layer: int, stride: int = 8) -> tuple[float, float]:
    """(floor, top) of one layer: low and high percentiles of a strided sample of up to
    ``LEVEL_FRAMES`` frames spread over the rocking curve (tails and peak; a bounded read on the
    GUI thread even for a real scan)."""
    valid = np.flatnonzero(np.isfinite(scan.angles[layer]))
    if len(valid) > LEVEL_FRAMES:
        valid = valid[np.linspace(0, len(valid) - 1, LEVEL_FRAMES).round().astype(int)]
    sample = np.asarray(scan.frames[layer, valid, ::stride, ::stride], dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    floor, top = (float(v) for v in np.percentile(sample, [FLOOR_PERCENTILE, TOP_PERCENTILE]))
    return floor, max(top, floor + 1e-9)


def normalised_curve(curve_sum: np.ndarray, n_pixels: int, floor: float, top: float) -> np.ndarray:
    """Patch mean above the floor, divided by the patch's own peak above the floor (at least
    ``MIN_CONTRAST`` of the layer's range, so noise on a flat patch is not blown up to 1)."""
    above = np.asarray(curve_sum, dtype=np.float64) / max(1, n_pixels) - floor
    finite = above[np.isfinite(above)]
    peak = float(finite.max()) if finite.size else 0.0
    return above / max(peak, MIN_CONTRAST * (top - floor), 1e-12)


def live_series(session: Session, layer: int, r: int, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """(angles, curve sum, predicted class, (floor, top)) of patch (r, c) in the layer followed live,
    frames in acquisition order (Follow mode: more than the file held when opened)."""
    live = live_layer(session, layer)
    n, p = live.n, session.patch_size
    ctx = live.ctx
    levels = (ctx.dark, ctx.bright) if ctx is not None else (0.0, 1.0)
    return live.acc.angles[:n].copy(), live.acc.curves[:n, r, c] * (p * p), live.label[:n, r, c].copy(), levels


def mark_patch(session: Session, marker: Any, grid_row: int, grid_col: int) -> Any:
    """Outline the picked patch over the scan (a 2D Shapes layer, shown on every frame): ``marker``
    moved, or a new one when it is gone; returns it."""
    image = session.scan_layer
    if image is None:
        return marker
    p = session.patch_size
    r0, c0 = grid_row * p - 0.5, grid_col * p - 0.5
    box = np.array([[r0, c0], [r0, c0 + p], [r0 + p, c0 + p], [r0 + p, c0]])
    if marker is not None and marker in session.viewer.layers and marker.metadata.get(OF_KEY) == image.metadata.get(ID_KEY):
        marker.data = [box]
        return marker
    with session.keep_selection():  # keep painting where the user was
        return session.viewer.add_shapes(
            [box], shape_type="rectangle", name=f"{image.name} picked patch", edge_color=MARKER_COLOUR,
            face_color="transparent", edge_width=max(1.0, p / 16), scale=tuple(image.scale[-2:]),
            translate=tuple(image.translate[-2:]), axis_labels=tuple(image.axis_labels[-2:]),
            units=tuple(image.units[-2:]), metadata={ROLE_KEY: "picked patch", OF_KEY: image.metadata.get(ID_KEY)},
        )


def class_colours(predicted: np.ndarray, labelled: np.ndarray) -> tuple[list[str], list[str]]:
    """Dot (predicted class) and ring (label) colours per frame."""
    colours = {WEAK_BEAM: CLASS_COLOURS[WEAK_BEAM], STRONG_BEAM: CLASS_COLOURS[STRONG_BEAM]}
    return ([colours.get(int(v), UNKNOWN_COLOUR) for v in predicted],
            [colours.get(int(v), "none") for v in labelled])


def draw_curve(ax: Any, angles: np.ndarray, y: np.ndarray, face: list[str], edge: list[str], frame_angle: float | None,
               weak_beam: Any, xlabel: str, title: str) -> tuple[Any, Any, Any]:
    """Draw a patch's normalised curve on ``ax`` (cleared); returns the animated artists (class dots,
    label rings, the frame line), which the widget blits over the rest when only they change."""
    ax.clear()
    ax.plot(angles, y, color=FOREGROUND, lw=1, zorder=1)
    dots = ax.scatter(angles, y, s=22, c=face, zorder=2, animated=True)
    rings = ax.scatter(angles, y, s=70, facecolors="none", edgecolors=edge, linewidths=1.4, zorder=3, animated=True)
    ax.set_ylim(-0.08, 1.12)
    ax.axhline(0.0, color="#5a5f6a", lw=0.8, zorder=0)
    shade_weak_beam(ax, weak_beam, 1.0)  # where weak beam is in the whole layer (Follow mode)
    frame_line = ax.axvline(frame_angle or 0.0, color=MARKER_COLOUR, lw=1, ls="--", zorder=0, animated=True)
    frame_line.set_visible(frame_angle is not None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("above background (1 = peak)")
    ax.set_title(title)
    return dots, rings, frame_line


def info_text(curve: np.ndarray, angles: np.ndarray, p: int, floor: float, where: tuple[int, int, int]) -> str:
    """The line under the plot: the patch, its peak angle and mean over the floor."""
    layer, r, c = where
    ok = np.isfinite(angles)
    if not ok.any():
        return f"Patch ({r}, {c}) of layer {layer}"
    mean = curve / (p * p)
    return (f"Patch ({r}, {c}), layer {layer}: peak {angles[ok][np.argmax(curve[ok])]:.4f} deg, "
            f"mean {np.nanmax(mean[ok]):.0f} over a floor of {floor:.0f}")


def remove_mouse_callback(viewer: Any, callback: Any) -> None:
    try:
        viewer.mouse_drag_callbacks.remove(callback)
    except (ValueError, RuntimeError):
        pass
