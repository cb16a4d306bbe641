"""`weakbeam simulate`: a synthetic DFXM layer scan in the ESRF Bliss layout, with ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.atomic import check_replaceable
from ..core.errors import WeakbeamError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="write a simulated DFXM rocking scan (Bliss HDF5) with its ground truth",
        description=(
            "Simulate dark-field X-ray microscopy rocking scans of a grain with a mosaic tilt field, "
            "sub-grain walls and dislocation lines (geometrical optics, plus saturation, thickness "
            "fringes, blur and a noisy uint16 detector). The output is an ESRF Bliss master file, one "
            "rocking scan per layer, with /ground_truth (per-patch weak/strong-beam classes, u values, "
            "3D dislocation lines in um). See docs/simulator.md."
        ),
    )
    p.add_argument("out", metavar="OUT.h5", help="output Bliss master file")
    p.add_argument("--layers", type=int, default=1, metavar="L", help="number of layers (rocking scans), 2 um apart (default 1)")
    p.add_argument("--frames", type=int, default=31, metavar="F", help="rocking angles per layer (default 31)")
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("ROWS", "COLS"),
                   help="frame size in pixels (default 256 256)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed: same seed, same file (default 0)")
    p.add_argument("--exposure", type=float, default=None, metavar="PHOTONS",
                   help="photons per pixel at the perfect-lattice peak (default 2000)")
    p.add_argument("--mosaicity", type=float, default=None, metavar="MRAD", help="mosaic tilt spread, mrad (default 0.06)")
    p.add_argument("--fwhm", type=float, default=None, metavar="MRAD", help="local rocking-curve FWHM, mrad (default 0.15)")
    p.add_argument("--density", type=float, default=None, metavar="PER_UM2",
                   help="free dislocation lines crossing a layer per um^2 (default 0.015)")
    p.add_argument("--walls", type=int, default=None, metavar="N", help="number of sub-grain walls (default 2)")
    p.add_argument("--pixel-size", type=float, default=None, metavar="UM", help="pixel size at the sample, um (default 0.05)")
    p.add_argument("--no-noise", action="store_true", help="write the noise-free expectation")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any other simulation parameter (repeatable), e.g. --set fringe_contrast=0 "
                        "--set two_theta_deg=17.5; the list is in docs/simulator.md")
    p.add_argument("--external", action="store_true",
                   help="frames in separate linked files beside OUT (as the beamline writes them)")
    p.add_argument("--compression", choices=["none", "gzip", "bitshuffle"], default="bitshuffle",
                   help="frame compression (default bitshuffle, LZ4 via hdf5plugin)")
    p.add_argument("--zigzag", action="store_true", help="write every other layer in reverse angle order")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ._progress import tqdm

    from ..core.simulate import SimulationParams

    out = Path(args.out)
    if out.is_dir():
        raise WeakbeamError(f"{out}: is a folder, expected an output .h5 file")
    check_replaceable(out, "simulation", group="ground_truth", overwrite=args.overwrite)
    overrides = {
        "exposure": args.exposure, "mosaicity_mrad": args.mosaicity, "fwhm_mrad": args.fwhm,
        "density_um2": args.density, "walls": args.walls, "pixel_size_um": args.pixel_size,
    }
    values: dict[str, object] = dict(
        rows=args.size[0], cols=args.size[1], layers=args.layers, frames=args.frames, seed=args.seed,
        noise=not args.no_noise,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.update(parse_settings(args.set))  # --set wins
    params = SimulationParams(**values)
    compression = None if args.compression == "none" else args.compression
    check_simulation_size(out, params, compressed=compression is not None)
    if args.external:  # the camera files beside OUT: only an earlier simulation's, with --overwrite
        from ..core.scanfiles.bliss_writer import external_name

        for i in range(params.layers):
            camera = out.parent / external_name(out, i + 1, "pco_ff")
            if camera.exists() and not (args.overwrite and out.exists()):
                raise WeakbeamError(f"{camera}: exists; refusing to replace it with a camera file of {out.name} "
                                    "(choose another name, or delete it first)")
    from ..workflows import run as run_workflow, simulate

    with tqdm(total=params.layers * params.frames, unit="frame", desc="simulate") as bar:
        run_workflow(simulate(out, params, external=args.external, compression=compression, zigzag=args.zigzag,
                              overwrite=args.overwrite),
                     lambda ev: bar.update(ev.done - bar.n))
    print(f"{out}: {params.layers} layer(s) x {params.frames} frames of {params.rows}x{params.cols}, ground truth in /ground_truth")
    return 0


def check_simulation_size(out: Path, params: object, compressed: bool) -> None:
    """Refuse up front a simulation larger than the memory (one layer at a time) or the disk."""
    import shutil

    from ..core.limits import check_memory, format_bytes, simulation_bytes

    rows, cols, frames, layers = (int(getattr(params, k)) for k in ("rows", "cols", "frames", "layers"))
    check_memory(simulation_bytes(rows, cols, frames), f"--size {rows} {cols} with {frames} frames",
                 "simulate fewer or smaller frames")
    raw = 2.0 * rows * cols * frames * layers  # uint16 frames
    need = raw / 2 if compressed else raw  # bitshuffle/gzip of noisy frames: about half
    free = shutil.disk_usage(out.parent if str(out.parent) else ".").free
    if need > free:
        raise WeakbeamError(
            f"{out}: {layers} layer(s) x {frames} frames of {rows}x{cols} need about {format_bytes(need)} of disk, "
            f"only {format_bytes(free)} free there"
        )


def parse_settings(items: list[str]) -> dict[str, object]:
    """``["name=value", ...]`` -> typed SimulationParams overrides (one-line error on a bad item)."""
    import dataclasses
    import json

    from ..core.simulate import SimulationParams

    fields = {f.name: f for f in dataclasses.fields(SimulationParams)}
    out: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise WeakbeamError(
                f"--set {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(fields))}"
            )
        default = fields[name].default
        try:
            value = json.loads(text.strip().lower() if isinstance(default, bool) else text)
        except json.JSONDecodeError:
            expected = "true or false" if isinstance(default, bool) else "a number"
            raise WeakbeamError(f"--set {item!r}: {text!r} is not {expected}") from None
        if isinstance(default, bool) and not isinstance(value, bool):
            raise WeakbeamError(f"--set {item!r}: expected true or false")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    return out
