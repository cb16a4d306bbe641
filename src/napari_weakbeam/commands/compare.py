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
    p.add_argument("--histogram", metavar="OUT.png", help="write the histogram of the distances to this image (.png, .pdf, .svg, .jpg or .tif)")
    add_overwrite_argument(p, "the --histogram image")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of `weakbeam compare`."""
    from ..core.atomic import check_replaceable
    from ..core.compare import check_histogram_path, compare_points, save_histogram_png
    from ..core.errors import WeakbeamError
    from ..core.reconstruction_io import load_point_cloud

    if args.histogram:
        check_histogram_path(args.histogram)
        check_replaceable(args.histogram, "histogram", inputs=[args.a, args.b], overwrite=args.overwrite)
    pa, name_a, pix_a = load_point_cloud(args.a)
    pb, name_b, pix_b = load_point_cloud(args.b)
    pixel = pix_a or pix_b
    tol = args.tolerance if args.tolerance is not None else (3 * pixel if pixel else 0.15)
    if tol < 0:
        raise WeakbeamError(f"--tolerance {tol}: must be a distance >= 0 in micrometres")
    stats, d_ab, d_ba = compare_points(pa, pb, tol, names=(args.a, args.b))
    if args.json:
        d = stats.to_dict()
        d.update(a=str(args.a), b=str(args.b), pixel_um=pixel)
        print(json.dumps(d, indent=1))
    else:
        print(f"A: {name_a}\nB: {name_b}")
        print(stats.summary())
        if pixel:
            px = stats.in_pixels(pixel)
            print(f"in pixels of {pixel:.4g} um: median {px['median']:.2f}, mean {px['mean']:.2f}, p90 {px['p90']:.2f}")
    if args.histogram:
        save_histogram_png(args.histogram, d_ab, d_ba, ("A -> B", "B -> A"), tol, title=f"{name_a} vs {name_b}")
        print(f"wrote {args.histogram}", file=sys.stdout)
    return 0
