"""napari sample-data contributions: the bundled simulated scans, opened like any Bliss file."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from ..core.errors import WeakbeamError
from ..core.scanfiles.readers import open_scan
from .reader import LayerData, scan_layer_data


def sample_path(name: str) -> Path:
    """Path of a bundled sample file (package data, so editable and wheel installs both work)."""
    resource = files("napari_weakbeam") / "sample_data" / name
    with as_file(resource) as path:
        if not path.is_file():
            raise WeakbeamError(
                f"{path}: bundled sample data missing (remake it with python scripts/make_sample_data.py)"
            )
        return Path(path)


def _sample(name: str, layer_name: str) -> list[LayerData]:
    scan = open_scan(sample_path(name))
    return [scan_layer_data(scan, layer_name)]


def sample_one_layer() -> list[LayerData]:
    """Simulated DFXM rocking scan: 1 layer, 31 frames, 256 x 256, with ground truth in the file."""
    return _sample("one_layer.h5", "one_layer")


def sample_multi_layer() -> list[LayerData]:
    """Simulated DFXM layer scan: 6 layers 2 um apart, 21 frames, 192 x 192, with ground truth."""
    return _sample("multi_layer.h5", "multi_layer")
