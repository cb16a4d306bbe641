"""The effective pixel size (um at the sample = camera pixel / objective magnification) in the
widgets: shown with where it comes from, and settable when the file gives only the camera's pixel
(or none), so that the scale bar, the 3D view and the reconstruction are in true micrometres."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import WeakbeamError
from ._layers import ID_KEY, OF_KEY, PATCH_KEY, patch_geometry
from ._scan_layer import SCAN_KEY, describe_scan

if TYPE_CHECKING:
    from ._session import Session

#: A pixel size at or above this (um) is a camera pixel, not the sample's (DFXM: ~0.03-0.5 um).
CAMERA_PIXEL_UM = 1.0


def pixel_text(scan: Any) -> str:
    """One line: the effective pixel size and its source, or what to do when it is unknown."""
    px = getattr(scan, "pixel_size", None)
    meta = getattr(scan, "metadata", None) or {}
    if not px:
        return "pixel size unknown: enter the pixel size at the sample (camera pixel / magnification)"
    mag = meta.get("magnification")
    camera = meta.get("detector_pixel_size")
    if mag:
        source = f"camera {float(camera):g} um / {float(mag):g}x" if camera else f"objective {float(mag):g}x"
        return f"{px:.4g} um per pixel at the sample ({source})"
    if meta.get("pixel_size_source") == "user":
        return f"{px:.4g} um per pixel at the sample (entered here)"
    if px >= CAMERA_PIXEL_UM:
        return (f"{px:.4g} um per pixel: the camera's? The file stores no objective magnification: enter "
                f"the pixel size at the sample (camera pixel / magnification)")
    return f"{px:.4g} um per pixel at the sample (from the file)"


def set_pixel_size(session: Session, um: float) -> None:
    """Use ``um`` as the pixel size at the sample: the scan, its layer and every patch layer over it
    are rescaled (units um), so the scale bar and a later reconstruction are in true micrometres."""
    if not np.isfinite(um) or um <= 0:
        raise WeakbeamError(f"pixel size {um}: must be a positive number of micrometres")
    scan = session.require_scan()
    image = session.scan_layer
    assert image is not None
    old = float(scan.pixel_size) if scan.pixel_size else 1.0
    scan.pixel_size = float(um)
    scan.metadata = dict(scan.metadata or {})
    scan.metadata["pixel_size_source"] = "user"
    image.metadata["pixel_size"] = float(um)
    for layer in (image, session.annotations):  # their plain descriptions of the scan follow
        if layer is not None and SCAN_KEY in layer.metadata:
            layer.metadata[SCAN_KEY] = describe_scan(scan, layer.metadata[SCAN_KEY].get("open"))
    factor = float(um) / old
    others = [layer for layer in session.viewer.layers if _over(layer, image)]
    scale = np.asarray(image.scale, dtype=float)
    scale[-2:] = float(um)
    image.scale = scale
    if str(image.units[-1]) != "micrometer":
        image.units = ("um", "", "um", "um") if image.ndim == 4 else ("", "um", "um")
    for layer in others:
        if PATCH_KEY in layer.metadata and layer.ndim == image.ndim:
            layer.scale, layer.translate = patch_geometry(image, int(layer.metadata[PATCH_KEY]))
        else:  # 2D marks and the picked-patch outline: scale their last two axes with the image
            s = np.asarray(layer.scale, dtype=float)
            t = np.asarray(layer.translate, dtype=float)
            s[-2:] *= factor
            t[-2:] *= factor
            layer.scale, layer.translate = s, t
        layer.units = tuple(image.units)[-layer.ndim:]
    session.viewer.reset_view()


def _over(layer: Any, image: Any) -> bool:
    """A layer drawn over the scan (its patch layers, marks, picked patch: linked to it in their
    metadata), not a 3D result."""
    return layer.metadata.get(OF_KEY) is not None and layer.metadata.get(OF_KEY) == image.metadata.get(ID_KEY)


def pixel_spin() -> Any:
    """The pixel-size field of the Annotate widget (0 shows "unknown")."""
    from ._controls import float_spin

    return float_spin(0.0, 1000.0, 0.0, decimals=4, step=0.01, suffix=" um", special="unknown",
                      tip="Pixel size at the sample = camera pixel / objective magnification: sets the scale bar "
                          "and the 3D reconstruction's micrometres")


def show_pixel(spin: Any, label: Any, scan: Any) -> None:
    """Show the scan's pixel size (and where it comes from) in ``spin`` and ``label``."""
    spin.setEnabled(scan is not None)
    spin.blockSignals(True)
    spin.setValue(float(scan.pixel_size) if scan is not None and scan.pixel_size else 0.0)
    spin.blockSignals(False)
    label.setText(pixel_text(scan) if scan is not None else "")
