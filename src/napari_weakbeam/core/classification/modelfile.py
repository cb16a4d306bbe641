"""Model files: weights plus architecture, hyper-parameters, patch size, normalisation, class
names, provenance and a format version, in one ``torch.save`` archive of plain types only.

Loading uses ``torch.load(weights_only=True)``: no arbitrary pickle is ever executed.
"""

from __future__ import annotations

import io
import os
from importlib import resources
from pathlib import Path
import warnings
from collections.abc import Iterable
from typing import Any

import torch

from ..atomic import atomic_path, check_replaceable
from .classifier import Classifier, build_classifier
from ..errors import WeakbeamError
from .normalise import Normalisation

FORMAT = "napari-weakbeam model"
FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "scanwb_default.pt"
#: The previous default, a single-frame (appearance-only) model, kept for comparison.
SINGLE_FRAME_MODEL_NAME = "wbnet_default.pt"
#: Names a user may give instead of a model file path.
MODEL_KEYWORDS = {"default": DEFAULT_MODEL_NAME, "single-frame": SINGLE_FRAME_MODEL_NAME}


def _to_payload(c: Classifier) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": c.arch,
        "hparams": dict(c.hparams),
        "patch_size": int(c.patch_size),
        "normalisation": c.normalisation.to_dict(),
        "class_names": list(c.class_names),
        "provenance": _plain(c.provenance),
        "state_dict": {k: v.detach().cpu() for k, v in c.net.state_dict().items()},
    }


def _plain(obj: Any) -> Any:
    """Provenance reduced to types that weights_only loading accepts."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None:
        return None
    for kind in (bool, int, float, str):  # also turns numpy scalars into builtins
        if isinstance(obj, kind):
            return kind(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _plain(obj.item())
    return str(obj)


def _from_payload(payload: Any, where: str) -> Classifier:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeakbeamError(f"{where}: not a napari-weakbeam model file")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise WeakbeamError(
            f"{where}: model format version {version} is not the version this napari-weakbeam reads ({FORMAT_VERSION})"
        )
    try:
        c = build_classifier(
            str(payload["arch"]),
            int(payload["patch_size"]),
            normalisation=Normalisation.from_dict(payload.get("normalisation", {})),
            provenance=payload.get("provenance", {}),
            **payload.get("hparams", {}),
        )
        c.net.load_state_dict(payload["state_dict"])
    except WeakbeamError as exc:
        raise WeakbeamError(f"{where}: {exc}") from None
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeakbeamError(f"{where}: model file is damaged or inconsistent ({first[:200]})") from None
    c.class_names = tuple(payload.get("class_names", c.class_names))
    c.eval()
    return c


def _load(fileobj: Any, where: str) -> Any:
    """``torch.load`` with weights only; every failure is one clean line (no PyTorch hint text)."""
    import pickle
    import zipfile

    if isinstance(fileobj, str):
        if os.path.getsize(fileobj) == 0:
            raise WeakbeamError(f"{where}: empty file, not a napari-weakbeam model file")
        with open(fileobj, "rb") as fh:
            head = fh.read(4)
        is_zip = zipfile.is_zipfile(fileobj)
    else:
        head = fileobj.read(4)
        is_zip = zipfile.is_zipfile(fileobj)
        fileobj.seek(0)
    if not is_zip and head == b"PK\x03\x04":
        raise WeakbeamError(f"{where}: truncated model file (the end of the archive is missing; was it copied completely?)")
    if not is_zip:
        raise WeakbeamError(
            f"{where}: not a napari-weakbeam model file (not a PyTorch archive; truncated, or another kind of file)"
        )
    try:
        return torch.load(fileobj, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a foreign pickled object
        raise WeakbeamError(
            f"{where}: not a napari-weakbeam model file (it holds Python objects, which are never loaded, for safety)"
        ) from None
    except Exception as exc:  # damaged archive: torch's messages carry long hints, not shown
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "invalid header" in text or "corrupted" in text or "Errno" in text or "failed reading" in text:
            raise WeakbeamError(
                f"{where}: damaged or truncated model file (the archive cannot be read; was it copied completely?)"
            ) from None
        raise WeakbeamError(f"{where}: not a readable napari-weakbeam model file ({text.split('. ')[0][:120]})") from None


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a napari-weakbeam model file (what a model may replace)."""
    import zipfile

    p = Path(path)
    if not p.is_file() or not zipfile.is_zipfile(p):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def check_model_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), overwrite: bool | None = None
) -> None:
    """Refuse, before any training, a model path that is an input or an existing file that is not a
    napari-weakbeam model (a scan, annotations, predictions, a TIFF, a text file...)."""
    check_replaceable(path, "model", same_kind=is_model_file, inputs=inputs, overwrite=overwrite)


def save_model(
    path: str | os.PathLike, classifier: Classifier, *, inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool | None = None,
) -> Path:
    """Write ``classifier`` to ``path`` atomically (never a half-written model file).

    An existing file there must be a model file and not one of ``inputs``
    (:func:`check_model_output`): a slip of the name never replaces a scan or labels."""
    path = Path(path)
    check_model_output(path, inputs, overwrite)
    with atomic_path(path) as tmp:
        torch.save(_to_payload(classifier), tmp)
    return path


def load_model(path: str | os.PathLike, device: str | torch.device | None = None) -> Classifier:
    """Read a model file safely (or a shipped model by keyword: ``default``, ``single-frame``);
    ``device`` (``auto``/``cpu``/...) moves it there, default cpu."""
    p = model_path(path)
    if not p.exists():
        raise WeakbeamError(f"{p}: model file not found")
    if p.is_dir():
        raise WeakbeamError(f"{p}: is a folder, not a model file")
    c = _from_payload(_load(str(p), str(p)), str(p))
    return c.to(device) if device is not None else c


def classifier_to_bytes(classifier: Classifier) -> bytes:
    """Serialise to bytes (to ship a model to Dask workers once)."""
    buf = io.BytesIO()
    torch.save(_to_payload(classifier), buf)
    return buf.getvalue()


def classifier_from_bytes(data: bytes) -> Classifier:
    """Inverse of :func:`classifier_to_bytes` (same safe loading)."""
    return _from_payload(_load(io.BytesIO(data), "model bytes"), "model bytes")


def default_model_path(name: str = DEFAULT_MODEL_NAME) -> Path:
    """Path of the default model (or another model shipped inside the package)."""
    return Path(str(resources.files("napari_weakbeam") / "models" / name))


def model_path(model: str | os.PathLike) -> Path:
    """A model file path, or the shipped model named by a keyword (``default``, ``single-frame``)."""
    if str(model) in MODEL_KEYWORDS:
        return default_model_path(MODEL_KEYWORDS[str(model)])
    return Path(model)


def load_default_model(device: str | torch.device | None = None) -> Classifier:
    """The shipped default scan-aware model (trained on simulated scans of two generators, see
    docs/model-card.md)."""
    p = default_model_path()
    if not p.exists():
        raise WeakbeamError(f"{p}: the default model is missing from this installation (reinstall napari-weakbeam)")
    return load_model(p, device)
