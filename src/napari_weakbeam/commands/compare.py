"""`weakbeam compare`: symmetric nearest-neighbour distances between two 3D reconstructions."""

from __future__ import annotations

import argparse
import json
import sys

from ._checks import add_overwrite_argument

DESCRIPTION = """\
Compare two 3D dislocation reconstructions (or one with the ground truth of a simulated scan) as the
paper does: every point of A to its nearest point of B and every point of B to its nearest point of
A, in micrometres. Prints the median, mean and 90th percentile of these symmetric distances and the
fraction within --tolerance; --histogram writes their histogram as a PNG.

Lines: when A holds traced 3D lines (reconstructions from this version) and B is a simulation
with ground truth (or another reconstruction with lines), the lines are scored too: the share of
B's line length that has a line of A within --tolerance in-plane and --z-tolerance in height, and
the length of A's lines that follows no line of B (false line length). Of a simulation, only the
observable truth counts: inside the field of view, inside an imaged slab or between two layers
whose slabs the line crosses.

A and B are reconstruction files from `weakbeam reconstruct` or simulation files from
`weakbeam simulate` (their /ground_truth dislocation lines are used).
"""

EPILOG = """\
examples:
  weakbeam compare vol.h5 manual.h5
  weakbeam compare vol.h5 sim.h5 --tolerance 0.15 --histogram distances.png
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="distance statistics between two reconstructions (or one and the simulated truth)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A.h5", help="reconstruction file or simulation file with ground truth")
    p.add_argument("b", metavar="B.h5", help="reconstruction file or simulation file with ground truth")
    p.add_argument("--tolerance", type=float, default=None, metavar="UM",
                   help="distance counted as a match, in micrometres (default: 3 pixels of A, or 0.15 um)")
    p.add_argument("--z-tolerance", type=float, default=None, metavar="UM",
                   help="lines: height difference counted as a match, um (default: half the slab thickness of a simulation, else half the layer spacing)")
    p.add_argument("--histogram", metavar="OUT.png", help="write the histogram of the distances to this image (.png, .pdf, .svg, .jpg or .tif)")
    add_overwrite_argument(p, "the --histogram image")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of `weakbeam compare`."""
    from ..core.atomic import check_replaceable
    from ..core.reconstruction.compare import check_histogram_path, save_histogram_png
    from ..workflows import compare, run as run_workflow

    if args.histogram:
        check_histogram_path(args.histogram)
        check_replaceable(args.histogram, "histogram", inputs=[args.a, args.b], overwrite=args.overwrite)
    result = run_workflow(compare(args.a, args.b, args.tolerance, args.z_tolerance, names=(args.a, args.b)))
    stats, d_ab, d_ba, pixel, line_score = result.stats, result.d_ab, result.d_ba, result.pixel_um, result.lines
    tol = result.tolerance
    name_a, name_b = result.descriptions
    if args.json:
        d = stats.to_dict()
        d.update(a=str(args.a), b=str(args.b), pixel_um=pixel)
        if line_score is not None:
            d["lines"] = line_score.to_dict()
        print(json.dumps(d, indent=1))
    else:
        print(f"A: {name_a}\nB: {name_b}")
        print(stats.summary())
        if pixel:
            px = stats.in_pixels(pixel)
            print(f"in pixels of {pixel:.4g} um: median {px['median']:.2f}, mean {px['mean']:.2f}, p90 {px['p90']:.2f}")
        if line_score is not None:
            print(line_score.summary())
    if args.histogram:
        save_histogram_png(args.histogram, d_ab, d_ba, ("A -> B", "B -> A"), tol, title=f"{name_a} vs {name_b}")
        print(f"wrote {args.histogram}", file=sys.stdout)
    return 0

