"""The Reconstruct widget's results in the viewer: the 3D layers of a reconstruction in the scan's
world (volume, points, surface, traced lines), the summary line, and the distance histogram.
Importing it loads no Qt (the histogram's canvas is the widget's)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.reconstruction.detector_defects import repaired_text
from ._jobs import ReconstructResult
from ._geometry import VIEW_ANGLES, camera, fit_camera, point_size
from ._space import points_4d, scale_4d, show_3d, space_of, volume_4d

# Not the WB / SB label colours: a reconstruction is not a class.
AUTO_COLOUR = "#ff5ad2"  # magenta: the automated reconstruction
MANUAL_COLOUR = "#3ee0d0"  # cyan: the manual reference
TRUTH_COLOUR = "#a8e05f"  # green: a ground truth (simulations)
LINES_COLOUR = "#ffffff"  # white: the traced 3D dislocation lines
PREFIX = "reconstruction"  # every 3D layer of the widget: "reconstruction <automated|manual> <kind>"


def colormap(colour: str, name: str) -> Any:
    from napari.utils.colormaps import Colormap

    return Colormap(colors=[[0, 0, 0, 0], colour], name=f"weakbeam {name}")


def our_layers(viewer: Any) -> list[Any]:
    return [layer for layer in viewer.layers if layer.name.startswith(f"{PREFIX} ")]


def add_reconstruction(viewer: Any, scan_layer: Any, rec: Any, name: str, colour: str, rendering: str,
                       surface: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Add (or replace) the 3D layers of ``rec`` in the scan layer's world (z, frame, y, x)."""
    space = space_of(scan_layer)
    axes = {"axis_labels": space["axis_labels"], "units": space["units"]}
    zyx = tuple(float(v) for v in rec.voxel_size_um)
    translate = scale_4d(tuple(rec.origin_um))
    names = {k: f"{PREFIX} {name} {k}" for k in ("volume", "points", "surface", "lines")}
    for n in names.values():
        if n in viewer.layers:
            viewer.layers.remove(n)
    viewer.add_image(
        volume_4d(rec.mask.astype(np.float32), space["n_frames"]), name=names["volume"], scale=scale_4d(zyx),
        translate=(translate[0], 0.0) + translate[2:], rendering=rendering, iso_threshold=0.5,
        colormap=colormap(colour, name), blending="additive", contrast_limits=(0, 1),
        opacity=1.0 if name == "automated" else 0.6, **axes,
    )
    if len(rec.points_um):
        viewer.add_points(points_4d(rec.points_um), name=names["points"], size=point_size(zyx), face_color=colour,
                          border_width=0, blending="translucent", projection_mode="all", shading="spherical", **axes)
    frame = float(viewer.dims.point[1]) if viewer.dims.ndim == 4 else 0.0
    if surface is not None and len(surface[1]):
        viewer.add_surface((points_4d(surface[0], frame), surface[1]), name=names["surface"],
                           colormap=colormap(colour, name), opacity=0.7, blending="translucent", shading="smooth", **axes)
    lines = getattr(rec, "lines", None)
    keep = [] if lines is None or name != "automated" else [k for k in range(len(lines)) if len(lines.line(k)) >= 2]
    if keep:
        viewer.add_shapes(  # a Shapes layer cannot repeat over frames: it follows the frame in view
            [points_4d(lines.line(k), frame) for k in keep], shape_type="path", name=names["lines"],
            edge_color=LINES_COLOUR, edge_width=2 * zyx[1], blending="translucent_no_depth",
            properties={"length_um": lines.lengths()[keep]}, **axes,
        )


def show_result(viewer: Any, scan_layer: Any, result: ReconstructResult, rendering: str) -> str:
    """Show the automated (and manual) reconstruction alone in 3D, the camera on them; returns the
    summary line."""
    surfaces = result.surfaces or {}
    add_reconstruction(viewer, scan_layer, result.auto, "automated", AUTO_COLOUR, rendering, surfaces.get("automated"))
    if result.manual is not None:
        add_reconstruction(viewer, scan_layer, result.manual, "manual", MANUAL_COLOUR, rendering, surfaces.get("manual"))
    shown = our_layers(viewer)
    show_3d(viewer, [layer.name for layer in shown])
    camera(viewer).angles = VIEW_ANGLES
    fit_camera(viewer, shown)
    text = f"{len(result.auto.points_um)} points ({result.auto.method})"
    if result.auto.lines is not None:
        text += f"; {len(result.auto.lines)} lines, {result.auto.lines.lengths().sum():.3g} um"
    drift = result.auto.drift_px
    if drift is not None and len(drift) > 1 and result.auto.drift_source == "none":
        text += "; drift not measured (the lines do not show it)"
    elif drift is not None and len(drift) > 1:
        step = float(np.linalg.norm(np.diff(drift, axis=0), axis=1).max())
        how = {"reference": "on the reference", "registration": "registered on the layers"}.get(
            result.auto.drift_source, "on the reference" if result.auto.params.get("drift_reference") else "from the lines")
        applied = "corrected" if result.auto.params.get("correct_drift") else "not applied"
        text += f"; drift {how} up to {step:.1f} px per layer ({applied})"
    if repaired_text(result.auto.defects):
        text += "; " + repaired_text(result.auto.defects)
    if result.manual is not None:
        text += f"; manual reference {len(result.manual.points_um)} points"
    if result.comparison is not None:
        s = result.comparison.stats
        text += (f"<br>automated vs manual: median {s.median:.3g} um, mean {s.mean:.3g} um, "
                 f"p90 {s.p90:.3g} um; {100 * s.within:.0f} % within {s.tolerance:.3g} um")
    return text


def plot_distances(canvas: Any, result: ReconstructResult) -> None:
    """The histogram of the distances automated <-> manual on a _plot.PlotCanvas."""
    from ..core.reconstruction.compare import plot_histogram
    from ._plot import FOREGROUND

    ax = canvas.axes
    ax.clear()
    c = result.comparison
    if c is not None:
        plot_histogram(ax, c.d_ab, c.d_ba, ("automated -> manual", "manual -> automated"), tolerance=c.tolerance)
        leg = ax.get_legend()
        if leg is not None:
            leg.get_frame().set_alpha(0.3)
            for t in leg.get_texts():
                t.set_color(FOREGROUND)
    else:
        ax.text(0.5, 0.5, "no manual reference to compare with", ha="center", va="center",
                color=FOREGROUND, transform=ax.transAxes, fontsize=8)
    canvas.style()
    canvas.draw_idle()
