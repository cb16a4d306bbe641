"""Annotation files: WB/SB labels painted at patch resolution, with what they belong to.

Layout (HDF5)::

    /annotations/label            uint8 (layers, frames, grid_rows, grid_cols), 0/1/2
    /annotations/angles           float64 (layers, frames), degrees
    /annotations/layer_positions  float64 (layers,), micrometres
    /annotations attrs: format, format_version, patch_size, frame_shape, source, scan_names
    /annotations is a NeXus NXentry; /annotations/labels an NXdata group linking the labels, over
    axes z (um), rocking angle (deg), y and x (um, or pixels when the pixel size is unknown)

Saved atomically (temporary file, then rename), so a crash never destroys earlier work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_h5, check_replaceable
from ..errors import WeakbeamError
from ..scanfiles.nexus import CLASS_NAME, make_entry, patch_grid_axes, write_nxdata
from ..patches import grid_shape
from ..scanfiles.readers.h5path import open_h5_file

FORMAT = "napari-weakbeam annotations"
FORMAT_VERSION = 1


@dataclass
class Annotations:
    """Patch-resolution labels for one scan."""

    label: np.ndarray  # uint8 (layers, frames, grid_rows, grid_cols)
    patch_size: int
    frame_shape: tuple[int, int]
    angles: np.ndarray | None = None
    layer_positions: np.ndarray | None = None
    source: str = ""
    scan_names: list[str] = field(default_factory=list)
    pixel_um: tuple[float, float] | None = None  # (dy, dx) of the frames' pixels, for the NeXus axes

    def counts(self) -> dict[int, int]:
        """Number of labelled patches per class (1 = WB, 2 = SB)."""
        return {c: int(np.count_nonzero(self.label == c)) for c in (1, 2)}

    def check_matches(self, scan, what: str = "annotations") -> None:
        """Raise a one-line error unless these labels fit ``scan`` (a core.scanfiles.scan.Scan)."""
        expected = (scan.n_layers, scan.n_frames) + grid_shape(scan.frame_shape, self.patch_size)
        if tuple(self.label.shape) != expected or tuple(self.frame_shape) != tuple(scan.frame_shape):
            raise WeakbeamError(
                f"{what} do not match the scan {scan.source}: labels {self.label.shape} for frames "
                f"{self.frame_shape} at patch size {self.patch_size}, but the scan gives {expected} "
                f"for frames {scan.frame_shape}"
            )
        if self.angles is not None and self.angles.shape == scan.angles.shape:
            a, b = self.angles, scan.angles
            both = np.isfinite(a) & np.isfinite(b)
            if not np.allclose(a[both], b[both], atol=1e-6):
                raise WeakbeamError(f"{what} were made on other rocking angles than the scan {scan.source}")


def save_annotations(path: str | os.PathLike, ann: Annotations) -> None:
    """Write ``ann`` to ``path`` atomically.

    An existing file there must be an annotation file: the scan (or any other file) is never
    replaced by a slip of the file name."""
    label = np.asarray(ann.label)
    if label.ndim != 4:
        raise WeakbeamError(f"annotations must be (layers, frames, grid_rows, grid_cols), got {label.shape}")
    check_replaceable(path, "annotation", group="annotations", inputs=[ann.source] if ann.source else [])
    with atomic_h5(path) as f:
        g = f.create_group("annotations")
        g.create_dataset("label", data=label.astype(np.uint8), compression="gzip", compression_opts=4)
        if ann.angles is not None:
            g.create_dataset("angles", data=np.asarray(ann.angles, dtype=np.float64))
        if ann.layer_positions is not None:
            g.create_dataset("layer_positions", data=np.asarray(ann.layer_positions, dtype=np.float64))
        g.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            patch_size=int(ann.patch_size),
            frame_shape=np.asarray(ann.frame_shape, dtype=np.int64),
            source=str(ann.source),
            scan_names=",".join(ann.scan_names),
        )
        if ann.angles is not None and ann.layer_positions is not None:
            axes = patch_grid_axes(ann.angles, ann.layer_positions, ann.frame_shape, ann.patch_size, ann.pixel_um)
            write_nxdata(g, "labels", g.name + "/label", axes, long_name=CLASS_NAME, interpretation="image",
                         title="painted weak-beam (1) / strong-beam (2) labels per patch")
            make_entry(g, "labels")


def load_annotations(path: str | os.PathLike) -> Annotations:
    """Read an annotation file written by :func:`save_annotations`."""
    p = Path(path)
    if not p.exists():
        raise WeakbeamError(f"{p}: annotation file not found")
    with open_h5_file(str(p)) as f:
        g = f.get("annotations")
        if g is None or g.attrs.get("format") != FORMAT:
            raise WeakbeamError(f"{p}: not a napari-weakbeam annotation file (no /annotations group)")
        version = int(g.attrs.get("format_version", -1))
        if version > FORMAT_VERSION:
            raise WeakbeamError(f"{p}: annotation format version {version} is newer than this napari-weakbeam reads ({FORMAT_VERSION})")
        names = str(g.attrs.get("scan_names", ""))
        return Annotations(
            label=np.asarray(g["label"][()], dtype=np.uint8),
            patch_size=int(g.attrs["patch_size"]),
            frame_shape=tuple(int(v) for v in g.attrs["frame_shape"]),
            angles=g["angles"][()] if "angles" in g else None,
            layer_positions=g["layer_positions"][()] if "layer_positions" in g else None,
            source=str(g.attrs.get("source", "")),
            scan_names=[s for s in names.split(",") if s],
        )
