"""`weakbeam demo`: napari on the bundled sample scan, with the weak-beam widgets docked."""

from __future__ import annotations

import argparse
import os
import sys

NO_DISPLAY = (
    "weakbeam demo needs a display, and this machine has none ($DISPLAY and $WAYLAND_DISPLAY are unset): "
    "run `scripts/test` (the napari tests under Xvfb) or the headless commands "
    "(`weakbeam simulate`, `weakbeam classify`, `weakbeam train`, `weakbeam reconstruct`)"
)


def no_display() -> bool:
    """True on Linux without an X11 or Wayland display."""
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="open napari on the bundled sample scan with the weak-beam widgets docked",
        description=(
            "Open napari on a simulated DFXM rocking scan shipped with the package, with the "
            "Annotate, Train, Predictions, Rocking curve and Reconstruct widgets docked: paint a few "
            "weak-beam / strong-beam patches, press Start training and watch the overlay. Needs a "
            "display."
        ),
    )
    p.add_argument(
        "--sample",
        choices=("one_layer", "multi_layer"),
        default="one_layer",
        help="which bundled scan to open (default: one_layer; multi_layer for 3D reconstruction)",
    )
    p.add_argument("--patch-size", type=int, default=32, help="patch size in pixels (default: 32, an 8 x 8 grid on the 256 x 256 sample)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._napari.sample_data import sample_path
    from ..core.limits import check_patch_size
    from ..core.scanfiles.readers import open_scan

    # a size the widgets cannot use is an error, not silently clamped to their range
    check_patch_size(args.patch_size, open_scan(str(sample_path(f"{args.sample}.h5"))).frame_shape)
    if no_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 1
    import napari

    from .._napari._demo import setup_demo

    viewer = napari.Viewer(title="napari-weakbeam demo")
    setup_demo(viewer, args.sample, args.patch_size)
    napari.run()
    return 0
