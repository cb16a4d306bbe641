"""Reconstruction files (HDF5); their exports (TIFF, VTK, XDMF, CSV) are in core.reconstruction.exports.

Layout::

    /reconstruction/volume           float32 (layers, rows, cols): the dislocation map
    /reconstruction/mask             uint8 (layers, rows, cols): the segmentation (0/1)
    /reconstruction/skeleton         uint8 (layers, rows, cols): its per-layer centre lines
    /reconstruction/points           float64 (N, 3): mask (or skeleton) voxels, z, y, x in um
    /reconstruction/layer_positions  float64 (layers,), micrometres
    /reconstruction/layer_done       bool (layers,): layers written (resume)
    /reconstruction/frames_used      int64 (layers,): manual method's frame per layer (-1: none)
    /reconstruction/noise            float64 (layers, 2): each layer map's noise (centre, spread)
    /reconstruction/registration     float32 (layers, rows/2, cols/2): drift-registration images
    /reconstruction/tails            float16 (layers, 2, rows, cols): the rocking curve's low and high
                                     tails around each layer's mask (streamed files; the lines'
                                     steep pieces are centred between them)
    /reconstruction/frame_counts     uint8 (layers, rows, cols): the weak-beam frames in which each
                                     pixel is bright (the few-frame peel of the points,
                                     core/reconstruction/few_frames.py)
    /reconstruction/weak_beam_frames int32 (layers,): the weak-beam frames each layer's
                                     frame_counts counted over
    /reconstruction/detector_defects int32 (layers, 2): the camera's hot pixels and the zinger
                                     values repaired in each layer's frames before its map
                                     (core/reconstruction/detector_defects.py)
    /reconstruction/drift_px         float64 (layers, 2): registered drift (dy, dx) of each layer
                                     relative to the first, pixels (attr ``applied``: whether
                                     points and lines are corrected for it)
    /reconstruction/lines/vertices   float64 (N, 3): 3D dislocation lines, z, y, x in um
    /reconstruction/lines/offsets    int64 (L + 1,): line k is vertices[offsets[k]:offsets[k + 1]]
    /reconstruction/lines/length_um  float64 (L,); /lines/direction float64 (L, 3) unit z, y, x
    /reconstruction attrs: format, format_version, voxel_size_um (dz, dy, dx), method,
                           params (JSON), source, scan_names, software, noise_level (the scan's
                           centre, spread used by the noise-based methods)

NeXus (core.scanfiles.nexus): /reconstruction is an NXentry opening on ``map`` (NXdata: the volume per layer,
with mask and skeleton as other signals, over z, y, x in um); ``point_cloud`` (the points, coloured
by layer) and ``line_vertices`` (the lines' vertices, coloured by line) are 3D scatters over x, y, z in um.

Whole reconstructions are saved atomically. :class:`ReconstructionWriter` writes layer by layer
into a hidden ``.NAME.partial`` beside the target (flushed per layer, ``layer_done`` marks finished
layers), computes the point cloud at :meth:`~ReconstructionWriter.close` and only then renames the
file into place, so an interrupted run resumes and never destroys an earlier file. At close, the
noise-based methods re-segment every layer with the scan's noise level, then the drift, points and
lines are computed (one layer in memory at a time). Version 1 files (no lines) still open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_h5, check_replaceable
from ..errors import WeakbeamError
from ..scanfiles.layer_file import LayerFileWriter
from .drift import REG_BIN, drift_and_lines
from .drift_reference import reference_drift
from .lines import Lines
from ..scanfiles.nexus import image_axes, layer_axis, make_entry, nearest_layer, write_nxdata, write_scatter
from ..scanfiles.readers.h5path import open_h5_file
from .reconstruct import (
    LayerResult,
    Reconstruction,
    ReconstructionParams,
    finish_segmentation,
    layer_points_um,
    voxel_size,
    with_pixel_aspect,
)

FORMAT = "napari-weakbeam reconstruction"
FORMAT_VERSION = 2
GROUP = "reconstruction"


def _software() -> str:
    from ... import __version__

    return f"napari-weakbeam {__version__}"


def _create_layout(g: h5py.Group, shape: tuple[int, int, int]) -> None:
    chunks = (1,) + tuple(shape[1:])
    g.create_dataset("volume", shape=shape, dtype=np.float32, chunks=chunks, compression="lzf")
    for name in ("mask", "skeleton"):
        g.create_dataset(name, shape=shape, dtype=np.uint8, chunks=chunks, compression="gzip", compression_opts=1)


def _attrs(voxel: tuple[float, float, float], method: str, params: dict, source: str, scan_names: list[str]) -> dict:
    return dict(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        voxel_size_um=np.asarray(voxel, dtype=np.float64),
        method=str(method),
        params=json.dumps(params),
        source=str(source),
        scan_names=",".join(scan_names),
        software=_software(),
    )


def _write_lines(g: h5py.Group, lines: Lines | None) -> None:
    if "lines" in g:
        del g["lines"]
    if lines is None:
        return
    lg = g.create_group("lines")
    lg.create_dataset("vertices", data=lines.vertices.astype(np.float64).reshape(-1, 3))
    lg.create_dataset("offsets", data=lines.offsets.astype(np.int64))
    lg.create_dataset("length_um", data=lines.lengths().astype(np.float64))
    lg.create_dataset("direction", data=lines.directions().astype(np.float64).reshape(-1, 3))
    lg.attrs["columns"] = "z, y, x (um)"


#: ``/reconstruction/drift_px`` attribute ``measured_on`` per drift source (drift.DRIFT_SOURCES).
DRIFT_TEXT = {
    "lines": "the lines' continuity (up to a linear trend)",
    "registration": "the layers' registration (the same content in every layer, shifted)",
    "none": ("nothing: the lines do not show it (none crosses three layers, or their drift steps beyond "
             "max_drift_px) and the layers' content differs (0 recorded)"),
    "": "the lines' continuity (up to a linear trend) or the layers' registration",
}


def _write_drift(g: h5py.Group, drift: np.ndarray | None, params: dict, source: str = "") -> None:
    if "drift_px" in g:
        del g["drift_px"]
    if drift is not None:
        g.create_dataset("drift_px", data=np.asarray(drift, dtype=np.float64).reshape(-1, 2))
        g["drift_px"].attrs["applied"] = bool(params.get("correct_drift", False))
        g["drift_px"].attrs["columns"] = "dy, dx (pixels) of each layer's content relative to the first layer"
        box = params.get("drift_reference")
        g["drift_px"].attrs["measured_on"] = (
            "the static reference in rows {}:{}, columns {}:{} (trend included)".format(*box) if box
            else DRIFT_TEXT.get(source, DRIFT_TEXT[""]))
        g["drift_px"].attrs["source"] = "reference" if box else source


def write_nexus(g: h5py.Group) -> None:
    """The NeXus view of a finished reconstruction group (after its points and lines)."""
    _, dy, dx = (float(v) for v in np.asarray(g.attrs["voxel_size_um"]).ravel()[:3])
    pos = g["layer_positions"][()]
    axes = [layer_axis(pos), *image_axes(g["volume"].shape[1:], (dy, dx))]
    write_nxdata(g, "map", g.name + "/volume", axes, long_name="dislocation map", interpretation="image",
                 auxiliary=[g.name + "/mask", g.name + "/skeleton"], title="dislocation map per layer")
    points = g["points"][()]
    write_scatter(g, "point_cloud", points, nearest_layer(points[:, 0], pos), "layer",
                  long_name="layer", title=f"{len(points)} dislocation points")
    if "line_vertices" in g:
        del g["line_vertices"]
    if "lines" in g and "vertices" in g["lines"]:
        offsets = g["lines/offsets"][()]
        ids = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)).astype(np.int32)
        write_scatter(g, "line_vertices", g["lines/vertices"][()], ids, "line_id", long_name="line",
                      title=f"{len(offsets) - 1} traced dislocation lines")
    make_entry(g, "map")


def save_reconstruction(path: str | os.PathLike, rec: Reconstruction, scan_names: list[str] | None = None) -> Path:
    """Write ``rec`` to ``path`` atomically."""
    path = Path(path)
    if path.is_dir():
        raise WeakbeamError(f"{path}: is a folder; give a file name for the reconstruction")
    check_replaceable(path, "reconstruction", group=GROUP, inputs=[rec.source] if rec.source else [])
    vol = np.asarray(rec.volume, dtype=np.float32)
    with atomic_h5(path) as f:
        g = f.create_group(GROUP)
        _create_layout(g, vol.shape)
        g["volume"][...] = vol
        g["mask"][...] = np.asarray(rec.mask, dtype=np.uint8)
        g["skeleton"][...] = np.asarray(rec.skeleton, dtype=np.uint8)
        g.create_dataset("points", data=np.asarray(rec.points_um, dtype=np.float64).reshape(-1, 3))
        g.create_dataset("layer_positions", data=np.asarray(rec.layer_positions, dtype=np.float64))
        g.create_dataset("layer_done", data=np.ones(vol.shape[0], dtype=bool))
        used = rec.frames_used if rec.frames_used is not None else np.full(vol.shape[0], -1)
        g.create_dataset("frames_used", data=np.asarray(used, dtype=np.int64))
        g.attrs.update(_attrs(rec.voxel_size_um, rec.method, rec.params, rec.source, scan_names or []))
        if rec.noise is not None:
            g.attrs["noise_level"] = np.asarray(rec.noise, dtype=np.float64)
        if rec.defects is not None:
            g.create_dataset("detector_defects", data=np.asarray(rec.defects, dtype=np.int32).reshape(-1, 2))
        _write_drift(g, rec.drift_px, rec.params, rec.drift_source)
        _write_lines(g, rec.lines)
        write_nexus(g)
    return path


def _open_group(path: str | os.PathLike) -> tuple[h5py.File, h5py.Group]:
    p = Path(path)
    if not p.exists():
        raise WeakbeamError(f"{p}: reconstruction file not found")
    if p.is_dir():
        raise WeakbeamError(f"{p}: is a folder, not a reconstruction file")
    f = open_h5_file(str(p))
    g = f.get(GROUP)
    if not isinstance(g, h5py.Group) or g.attrs.get("format") != FORMAT:
        f.close()
        raise WeakbeamError(f"{p}: not a napari-weakbeam reconstruction file (no /{GROUP} group)")
    version = int(g.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        f.close()
        raise WeakbeamError(f"{p}: reconstruction format version {version} is newer than this software reads")
    return f, g


def load_reconstruction(path: str | os.PathLike, volumes: bool = True) -> Reconstruction:
    """Read a reconstruction file; ``volumes=False`` reads only the points and metadata."""
    p = Path(path)
    f, g = _open_group(p)
    try:
        with f:
            for name in ("volume", "mask", "skeleton", "points", "layer_positions"):
                if name not in g:
                    raise WeakbeamError(f"{p}: reconstruction file is missing /{GROUP}/{name}")
            shape = g["volume"].shape
            if volumes:
                vol = np.asarray(g["volume"][()], dtype=np.float32)
                mask = np.asarray(g["mask"][()]).astype(bool)
                skel = np.asarray(g["skeleton"][()]).astype(bool)
            else:
                vol = np.zeros((0,) + tuple(shape[1:]), np.float32)
                mask = skel = np.zeros((0,) + tuple(shape[1:]), bool)
            points = np.asarray(g["points"][()], dtype=np.float64).reshape(-1, 3)
            pos = np.asarray(g["layer_positions"][()], dtype=np.float64)
            used = np.asarray(g["frames_used"][()]) if "frames_used" in g else None
            drift = np.asarray(g["drift_px"][()], dtype=np.float64) if "drift_px" in g else None
            drift_source = str(g["drift_px"].attrs.get("source", "")) if "drift_px" in g else ""
            defects = np.asarray(g["detector_defects"][()], dtype=np.int64) if "detector_defects" in g else None
            lines = None
            if "lines" in g and "vertices" in g["lines"] and "offsets" in g["lines"]:
                lines = Lines(g["lines"]["vertices"][()], g["lines"]["offsets"][()])
            attrs = dict(g.attrs)
    except WeakbeamError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise WeakbeamError(f"{p}: corrupt or truncated reconstruction file ({exc})") from None
    try:
        params = json.loads(str(attrs.get("params", "{}")))
    except json.JSONDecodeError:
        raise WeakbeamError(f"{p}: unreadable reconstruction parameters") from None
    voxel = tuple(float(v) for v in np.asarray(attrs.get("voxel_size_um", (1.0, 1.0, 1.0))).ravel()[:3])
    if len(voxel) != 3 or not all(np.isfinite(voxel)):
        raise WeakbeamError(f"{p}: invalid voxel size {attrs.get('voxel_size_um')}")
    method = str(attrs.get("method", ""))
    return Reconstruction(
        volume=vol,
        mask=mask,
        skeleton=skel,
        points_um=points,
        voxel_size_um=voxel,  # type: ignore[arg-type]
        layer_positions=pos,
        method=method,
        params=params,
        source=str(attrs.get("source", "")),
        frames_used=used if method == "manual" else None,
        lines=lines,
        drift_px=drift,
        drift_source=drift_source,
        defects=defects,
        noise=tuple(float(v) for v in np.asarray(attrs["noise_level"]).ravel()[:2]) if "noise_level" in attrs else None,  # type: ignore[arg-type]
    )


def load_point_cloud(path: str | os.PathLike) -> tuple[np.ndarray, str, float | None]:
    """Points (N, 3) z, y, x um from a reconstruction or a simulation file with ground truth.

    Returns ``(points, description, pixel_um)``; ``pixel_um`` is the in-plane pixel (dy) when known.
    """
    p = Path(path)
    if not p.exists():
        raise WeakbeamError(f"{p}: file not found")
    with open_h5_file(str(p)) as f:
        kind = "reconstruction" if GROUP in f else "ground_truth" if "ground_truth" in f else ""
    if kind == "reconstruction":
        rec = load_reconstruction(p, volumes=False)
        return rec.points_um, f"{p.name} ({rec.method})", rec.voxel_size_um[1]
    if kind == "ground_truth":
        from ..simulate import load_truth

        truth = load_truth(p)
        pixel = getattr(truth, "pixel_size", None)
        return np.asarray(truth.points_um, dtype=np.float64), f"{p.name} (ground truth)", pixel
    raise WeakbeamError(f"{p}: neither a reconstruction file (/{GROUP}) nor a simulation with /ground_truth")


def _same_source(a: str, b: str) -> bool:
    """Whether two scan sources (``FILE[::/dataset]``) name the same data, wherever run from."""
    def norm(src: str) -> str:
        file, sep, rest = src.partition("::")
        return os.path.abspath(file) + sep + rest if file else src

    return norm(a) == norm(b)


class ReconstructionWriter(LayerFileWriter):
    """Writes a reconstruction layer by layer (flushed per layer) and finishes it with the points.

    Built at ``.NAME.partial`` beside ``path``; :meth:`close` computes the point cloud from the
    stored skeleton and moves the file to ``path`` when every layer is done. ``resume=True``
    continues an earlier partial file (or a finished file at ``path``) made with the same scan
    shape, method and parameters; anything else starts over.
    """

    group = GROUP
    what = "reconstruction"

    def __init__(self, path: str | os.PathLike, scan: Any, params: ReconstructionParams, resume: bool = False):
        self.scan = scan
        self.params = with_pixel_aspect(scan, params)  # as the layers were made with (prepare_params)
        self.shape = (scan.n_layers,) + tuple(scan.frame_shape)
        self.voxel = voxel_size(scan)
        self._open(path, _scan_files(scan), scan.n_layers, resume)

    def _create(self) -> h5py.File:
        f = h5py.File(self.partial, "w")
        g = f.create_group(GROUP)
        _create_layout(g, self.shape)
        g.create_dataset("layer_positions", data=np.asarray(self.scan.layer_positions, dtype=np.float64))
        g.create_dataset("layer_done", data=np.zeros(self.shape[0], dtype=bool))
        g.create_dataset("frames_used", data=np.full(self.shape[0], -1, dtype=np.int64))
        g.create_dataset("noise", data=np.full((self.shape[0], 2), np.nan))
        reg_shape = (self.shape[0], self.shape[1] // REG_BIN, self.shape[2] // REG_BIN)
        g.create_dataset("registration", shape=reg_shape, dtype=np.float32, chunks=(1,) + reg_shape[1:],
                         compression="lzf")
        g.create_dataset("tails", shape=(self.shape[0], 2) + self.shape[1:], dtype=np.float16,
                         chunks=(1, 2) + self.shape[1:], compression="lzf")
        g.create_dataset("frame_counts", shape=self.shape, dtype=np.uint8, chunks=(1,) + self.shape[1:],
                         compression="lzf")
        g.create_dataset("weak_beam_frames", shape=(self.shape[0],), dtype=np.int32)
        g.create_dataset("detector_defects", shape=(self.shape[0], 2), dtype=np.int32)
        g.attrs.update(_attrs(self.voxel, self.params.method, self.params.to_dict(), self.scan.source,
                              list(self.scan.scan_names)))
        f.flush()
        return f

    def _reopen(self) -> h5py.File | None:
        try:
            f = h5py.File(self.partial, "a")
        except OSError:
            self.partial.unlink()
            return None
        g = f.get(GROUP)
        ok = (
            isinstance(g, h5py.Group)
            and "volume" in g
            and "registration" in g
            and "tails" in g
            and "frame_counts" in g
            and "weak_beam_frames" in g
            and "detector_defects" in g
            and tuple(g["volume"].shape) == self.shape
            and json.loads(str(g.attrs.get("params", "{}"))) == self.params.to_dict()
            and _same_source(str(g.attrs.get("source", "")), str(self.scan.source))
            and str(g.attrs.get("scan_names", "")) == ",".join(self.scan.scan_names)
            and "layer_positions" in g
            and np.allclose(g["layer_positions"][()], np.asarray(self.scan.layer_positions, dtype=np.float64))
        )
        if not ok:
            f.close()
            self.partial.unlink()
            return None
        return f

    def write_layer(self, i: int, result: LayerResult) -> None:
        """Store one layer's map, mask and skeleton, then mark it done."""
        g = self._group
        g["volume"][i] = np.asarray(result.map, dtype=np.float32)
        g["mask"][i] = np.asarray(result.mask, dtype=np.uint8)
        g["skeleton"][i] = np.asarray(result.skeleton, dtype=np.uint8)
        g["frames_used"][i] = int(result.frame_used)
        g["noise"][i] = np.asarray(result.noise, dtype=np.float64)
        if result.reg is not None and tuple(result.reg.shape) == tuple(g["registration"].shape[1:]):
            g["registration"][i] = result.reg
        if result.tails is not None:
            g["tails"][i] = result.tails
        if result.counts is not None:
            g["frame_counts"][i] = result.counts
            g["weak_beam_frames"][i] = int(result.wb_frames)
        g["detector_defects"][i] = np.asarray(result.defects, dtype=np.int32)
        self._mark_done(i)

    def _finish(self, g: h5py.Group) -> None:
        """The whole scan, one layer in memory at a time: segmentation with the scan's noise
        level (noise-based methods), drift, the point cloud and the 3D lines."""
        pos = g["layer_positions"][()]
        params = self.params
        level = finish_segmentation(g["volume"], g["mask"], g["skeleton"], params, g["noise"][()], tails=g["tails"],
                                    counts=g["frame_counts"], wb_frames=g["weak_beam_frames"][()])
        if level is not None:
            g.attrs["noise_level"] = np.asarray(level, dtype=np.float64)
        reg = g["registration"]
        reference = None if params.drift_reference is None else reference_drift(self.scan, params.drift_reference,
                                                                                 params.max_drift_px)
        drift, lines, source = drift_and_lines(_BoolLayers(g["mask"]), pos, self.voxel, [reg[i] for i in range(self.shape[0])],
                                       max_shift_px=params.max_drift_px, correct=params.correct_drift, trace=params.trace,
                                       link_distance_um=params.link_distance_um, tails=g["tails"], reference=reference,
                                       skeletons=_BoolLayers(g["skeleton"]) if params.points == "skeleton" else None)
        _write_drift(g, drift, params.to_dict(), source)
        shift = drift if params.correct_drift else None
        src = g["skeleton"] if params.points == "skeleton" else g["mask"]
        pts = [layer_points_um(src[i].astype(bool), pos[i], self.voxel, None if shift is None else shift[i])
               for i in range(self.shape[0])]
        pts_all = np.concatenate(pts) if pts else np.zeros((0, 3))
        if "points" in g:
            del g["points"]
        g.create_dataset("points", data=pts_all.astype(np.float64).reshape(-1, 3))
        _write_lines(g, lines)
        write_nexus(g)


class _BoolLayers:
    """A uint8 mask dataset read one layer at a time as bool."""

    def __init__(self, ds: Any):
        self.ds = ds

    def __len__(self) -> int:
        return int(self.ds.shape[0])

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self.ds[i]).astype(bool)


def _scan_files(scan: Any) -> list[str]:
    """The files a scan reads (never to be overwritten by an output)."""
    files = getattr(scan, "input_files", None)
    return files() if callable(files) else [str(getattr(scan, "source", "") or "")]
