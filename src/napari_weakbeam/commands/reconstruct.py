"""`weakbeam reconstruct`: 3D dislocation reconstruction from the weak-beam data of a layer scan."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._checks import add_overwrite_argument, check_distinct_outputs, check_finite, check_job, patch_option, resumable
from ._cluster import add_cluster_arguments, client_from_args
from .classify import add_device_argument, add_input_arguments, load_classifier, open_input, resolve_device

DESCRIPTION = """\
Reconstruct the dislocations of a DFXM layer scan in 3D from its weak-beam (WB) data and write
VOL.h5: /reconstruction/volume (float32 map, layers x rows x cols), /reconstruction/mask,
/reconstruction/skeleton, /reconstruction/points (N x 3, z, y, x in micrometres) and the 3D
dislocation lines /reconstruction/lines/vertices and /offsets, with the voxel size (layer spacing,
pixel size, and the 1/sin(2theta) stretch of x when 2theta is known) and the registered drift
between layers (/reconstruction/drift_px). VOL.h5 is a NeXus file: silx view and h5web open it on
the dislocation map per layer with axes in micrometres. --export and --export-lines write copies
for ParaView (.vtk, .xdmf), Fiji (.tif) and spreadsheets (.csv).

Methods (docs/reconstruction.md):
  adaptive  (default) the paper's normalised WB sum, segmented with thresholds taken from the
          data: hysteresis from the scan's noise level (measured where there are no lines, the
          same for every layer), then a fraction of each object's own peak
  paper   the published pipeline: strong-beam (SB) patches replaced by the frame mean, each frame
          normalised (minus mean+std, clipped, / 98th percentile), frames summed, / 99th
          percentile, threshold (--threshold, default 0.65), morphological clean-up
  ridge   the same normalised sum, then a line filter (--line-filter) and the same data-driven
          threshold (or --threshold-rule), then the same clean-up
  manual  the manual reference of the paper: one WB frame per layer (--frames, or the default
          rule: the weak-beam frame nearest the rocking peak), floor at 110 ADU, line filter,
          threshold; uses no classifier

The WB/SB labels come from --predictions (from `weakbeam classify`), or else the scan is classified
on the fly, layer by layer, with --model (default: the shipped model). Layers are processed one at
a time, so memory stays bounded by one layer whatever the size of the scan.
"""

EPILOG = """\
examples:
  weakbeam reconstruct sample.h5 --predictions pred.h5 --out vol.h5
  weakbeam reconstruct sample.h5 --out vol.h5 --method ridge --export vol.vtk --export vol.tif
  weakbeam reconstruct sample.h5 --out manual.h5 --method manual --frames 3,3,4,2
  weakbeam reconstruct sample.h5 --out vol.h5 --export-lines lines.vtk --export-lines lines.csv
  weakbeam reconstruct sample.h5 --out vol.h5 --export points.xdmf --export-lines lines.xdmf
  weakbeam compare vol.h5 manual.h5 --histogram distances.png
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="3D dislocation reconstruction from the weak-beam data (writes VOL.h5)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="a Bliss master .h5 file, a folder or glob of EDF frames, a TIFF stack, or FILE.h5::/path/to/dataset")
    p.add_argument("--out", "-o", required=True, metavar="VOL.h5", help="reconstruction file to write")
    p.add_argument("--predictions", "-p", metavar="PRED.h5", help="per-patch WB/SB labels from `weakbeam classify` (default: classify on the fly)")
    p.add_argument("--method", default="adaptive", choices=["adaptive", "paper", "ridge", "manual"], help="reconstruction method (default: adaptive)")
    p.add_argument("--model", "-m", metavar="MODEL.pt", help="model for on-the-fly classification (default: the shipped model)")
    p.add_argument("--patch-size", type=int, metavar="P", help="patch size for on-the-fly classification (default: the model's)")
    add_device_argument(p)
    add_input_arguments(p)
    g = p.add_argument_group("method parameters (defaults in docs/reconstruction.md)")
    g.add_argument("--threshold", type=float, help="paper: threshold on the normalised sum (default 0.65)")
    g.add_argument("--line-filter", choices=["sato", "meijering", "frangi"], help="ridge/manual: line filter (default sato)")
    g.add_argument("--sigmas", metavar="S1,S2", help="ridge/manual: line-filter scales in pixels (default 1,2)")
    g.add_argument("--threshold-rule", choices=["hysteresis", "otsu", "percentile", "mad", "fixed"], help="ridge: how the threshold is chosen (default hysteresis)")
    g.add_argument("--min-size", type=int, metavar="PX", help="remove objects smaller than PX pixels (default 22 for paper, 5 otherwise)")
    g.add_argument("--dark-level", type=float, metavar="ADU", help="detector dark level (default: estimated per layer)")
    g.add_argument("--floor", type=float, metavar="ADU", help="manual: intensity floor (default 110)")
    g.add_argument("--points", choices=["mask", "skeleton"], help="voxels that make the point cloud (default skeleton: the centre lines)")
    g.add_argument("--frames", metavar="F1,F2,...", help="manual: the WB frame of each layer, or one for all, counted from 0 in increasing rocking angle (the napari frame slider; -1: the default rule; write --frames=-1,3,... when the list starts with -1)")
    g.add_argument("--link-distance", type=float, metavar="UM", help="line tracing: largest in-plane step (um) of a line between layers (default 2 x the layer spacing)")
    g.add_argument("--correct-drift", action="store_true", help="correct points and lines for the drift registered between layers (always recorded; off by default, see docs/reconstruction.md)")
    g.add_argument("--drift-reference", metavar="R0:R1,C0:C1", help="register the drift, trend included, on a static non-diffracting feature (fiducial marker, pore, sample edge) in these rows and columns of the frames, in every layer (default: from the lines, up to a linear trend)")
    g.add_argument("--no-lines", action="store_true", help="do not trace 3D dislocation lines")
    g.add_argument("--keep-detector-defects", action="store_true", help="adaptive/ridge: do not repair the camera's hot pixels and zingers before the map (repaired by default, docs/reconstruction.md step 2)")
    p.add_argument("--export", action="append", default=[], metavar="FILE", help="also export: .tif (mask stack, ImageJ/Fiji at scale), .vtk or .xdmf (ParaView point cloud with layer and map value per point; .xdmf also writes FILE.h5), .csv (points); repeatable")
    add_overwrite_argument(p, "an --export file")
    p.add_argument("--export-lines", action="append", default=[], metavar="FILE", help="also export the 3D lines: .vtk or .xdmf (polylines for ParaView, with line id and layer per vertex; .xdmf also writes FILE.h5) or .csv (line,z_um,y_um,x_um); repeatable")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_cluster_arguments(p)
    p.set_defaults(func=run)


def params_from_args(args: argparse.Namespace) -> Any:
    """ReconstructionParams from the command-line options (unset options keep the defaults)."""
    from ..core.errors import WeakbeamError
    from ..core.reconstruction.reconstruct import ReconstructionParams

    kw: dict[str, Any] = {"method": args.method}
    for opt, name in (("threshold", "threshold"), ("line_filter", "line_filter"), ("threshold_rule", "threshold_rule"),
                      ("min_size", "min_size"), ("dark_level", "dark_level"), ("floor", "intensity_floor"),
                      ("points", "points")):
        v = getattr(args, opt, None)
        if v is not None:
            kw[name] = v
    if getattr(args, "link_distance", None) is not None:
        if not args.link_distance > 0:
            raise WeakbeamError(f"--link-distance {args.link_distance}: must be a distance > 0 micrometres")
        kw["link_distance_um"] = args.link_distance
    if getattr(args, "correct_drift", False):
        kw["correct_drift"] = True
    if getattr(args, "no_lines", False):
        kw["trace"] = False
    if getattr(args, "keep_detector_defects", False):
        kw["detector_defects"] = False
    if getattr(args, "drift_reference", None):
        from ..core.reconstruction.drift_reference import parse_box

        kw["drift_reference"] = parse_box(args.drift_reference)
    if args.sigmas:
        try:
            kw["sigmas"] = tuple(float(s) for s in args.sigmas.split(",") if s.strip())
        except ValueError:
            raise WeakbeamError(f"--sigmas {args.sigmas!r}: expected numbers separated by commas, e.g. 1,2") from None
    return ReconstructionParams(**kw)


def parse_frames(text: str | None, n_layers: int) -> list[int] | None:
    """``--frames 3,4,-1`` -> one frame index per layer (a single value applies to every layer)."""
    from ..core.errors import WeakbeamError

    if not text:
        return None
    try:
        vals = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise WeakbeamError(f"--frames {text!r}: expected frame indices separated by commas") from None
    if len(vals) == 1:
        vals = vals * n_layers
    if len(vals) != n_layers:
        raise WeakbeamError(f"--frames: {len(vals)} frame indices for {n_layers} layers (give one per layer, or one for all)")
    return vals


def label_source(args: argparse.Namespace, scan: Any, params: Any) -> Any:
    """Predictions from --predictions, or a classifier for on-the-fly labels, or None (manual)."""
    if params.method == "manual":
        return None
    if args.predictions:
        from ..core.classification.predictions import load_predictions

        pred = load_predictions(args.predictions)
        pred.check_matches(scan, what=f"predictions {args.predictions}")
        return pred
    clf = load_classifier(args.model, args.patch_size)
    return clf.to(resolve_device(args.device))


def run(args: argparse.Namespace) -> int:
    """Entry point of `weakbeam reconstruct`."""
    from ..core.errors import WeakbeamError

    out = Path(args.out)
    if out.is_dir():
        raise WeakbeamError(f"{out}: is a folder; --out needs a file name such as vol.h5")
    from ..core.reconstruction.exports import POINT_FORMATS, STACK_FORMATS, output_files

    for e in args.export:
        if Path(e).suffix.lower() not in STACK_FORMATS + POINT_FORMATS:
            raise WeakbeamError(f"--export {e}: unknown format (use .tif, .vtk, .xdmf or .csv)")
    export_lines = getattr(args, "export_lines", []) or []
    for e in export_lines:
        if Path(e).suffix.lower() not in POINT_FORMATS:
            raise WeakbeamError(f"--export-lines {e}: unknown format (use .vtk, .xdmf or .csv)")
    check_finite(args, ("threshold", "dark_level", "floor", "pixel_size", "magnification"))
    check_distinct_outputs([out, *(p for e in args.export + export_lines for p in output_files(e))])
    if args.predictions and args.patch_size is not None:
        raise WeakbeamError("--patch-size is for on-the-fly classification; with --predictions the patch size is the predictions' own")
    params = params_from_args(args)
    if export_lines and not params.trace:
        raise WeakbeamError("--export-lines needs the lines: drop --no-lines")
    scan = open_input(args)
    check_outputs(out, args.export + export_lines, scan, overwrite=args.overwrite)
    frames = parse_frames(args.frames, scan.n_layers)
    if args.patch_size is not None and params.method != "manual" and not args.predictions:
        check_job(scan, args.patch_size, "classification")
    source = label_source(args, scan, params)
    check_job(scan, getattr(source, "patch_size", None), "reconstruction", option=patch_option(args), per_layer=True)
    with resumable(out), client_from_args(args) as client:
        rec = run_reconstruction(scan, source, params, out, frames=frames, resume=getattr(args, "resume", False),
                                 quiet=args.quiet, client=client, device=getattr(args, "device", None))
    for e in args.export:
        export_points_or_stack(e, out, rec)
    for e in export_lines:
        from ..core.reconstruction.exports import export_lines as write_lines

        write_lines(e, rec)
        print(f"exported {e}", file=sys.stdout)
    dz, dy, dx = rec.voxel_size_um
    print(
        f"wrote {out}: {scan.n_layers} layers x {scan.frame_shape[0]}x{scan.frame_shape[1]}, method {params.method}, "
        f"{len(rec.points_um)} points; voxel {dz:.4g} x {dy:.4g} x {dx:.4g} um (z, y, x)",
        file=sys.stdout,
    )
    print(summary_lines(rec), file=sys.stdout)
    return 0


def summary_lines(rec: Any) -> str:
    """One line on the traced lines, the registered drift and the detector defects repaired."""
    import numpy as np

    parts = []
    if rec.lines is not None:
        lengths = rec.lines.lengths()
        multi = int(np.sum(np.diff(rec.lines.offsets) > 2))
        parts.append(f"{len(rec.lines)} lines ({multi} through several layers), total length {lengths.sum():.4g} um")
    if rec.drift_px is not None and len(rec.drift_px) > 1 and rec.drift_source == "none":
        parts.append("drift between layers not measured (the lines do not show it and the layers differ)")
    elif rec.drift_px is not None and len(rec.drift_px) > 1:
        step = np.linalg.norm(np.diff(rec.drift_px, axis=0), axis=1)
        applied = "corrected" if rec.params.get("correct_drift") else "recorded, not applied"
        on = ", on the reference box" if rec.params.get("drift_reference") else ""
        parts.append(f"registered drift between layers up to {step.max():.1f} px ({applied}{on})")
    from ..core.reconstruction.detector_defects import repaired_text

    if repaired_text(getattr(rec, "defects", None)):
        parts.append(repaired_text(rec.defects))
    return "; ".join(parts) if parts else "no lines traced"


def check_outputs(out: Path, exports: list[str], scan: Any, overwrite: bool = False) -> None:
    """Before any work: --out and --export must not overwrite the scan (or, for --out, a file that
    is not a reconstruction; for --export, any existing file without --overwrite)."""
    from ..core.atomic import check_replaceable
    from ..core.reconstruction.exports import output_files
    from ..core.reconstruction.reconstruction_io import GROUP

    check_replaceable(out, "reconstruction", group=GROUP, inputs=scan.input_files())
    for e in exports:
        for p in output_files(e):
            check_replaceable(p, "export", inputs=scan.input_files() + [str(out)], overwrite=overwrite)


def run_reconstruction(scan: Any, source: Any, params: Any, out: Path, *, frames: list[int] | None = None,
                       resume: bool = False, quiet: bool = False, client: Any = None, device: str | None = None) -> Any:
    """Reconstruct the layers into ``out`` with a progress bar (in this process, or on ``client``'s
    workers). Returns the Reconstruction with its points (volumes stay in the file, not in memory)."""
    from ._progress import tqdm

    from ..workflows import reconstruct_scan, run

    with tqdm(total=scan.n_layers, desc="reconstruct", unit="layer", disable=quiet, file=sys.stderr) as bar:
        return run(reconstruct_scan(scan, source, params, out, client=client, resume=resume, frames=frames,
                                    device=None if client is None else (device or "auto")),
                   lambda ev: bar.update(ev.done - bar.n))


def export_points_or_stack(path: str, vol_path: Path, rec: Any) -> None:
    """--export: the mask stack (.tif, read back from VOL.h5) or the point cloud (.vtk/.xdmf with
    the map value per point, read from VOL.h5 a layer at a time; .csv)."""
    import h5py

    from ..core.reconstruction.exports import STACK_FORMATS, export
    from ..core.reconstruction.reconstruction_io import GROUP, load_reconstruction

    if Path(path).suffix.lower() in STACK_FORMATS:
        export(path, load_reconstruction(vol_path))
    else:
        with h5py.File(vol_path, "r") as f:
            export(path, rec, volume=f[GROUP]["volume"])
    print(f"exported {path}", file=sys.stdout)
