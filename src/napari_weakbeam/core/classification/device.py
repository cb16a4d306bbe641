"""Choosing the torch device: ``auto`` (cuda, then mps, then cpu) or a named one."""

from __future__ import annotations

import os

import torch

from ..errors import WeakbeamError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into a torch device that exists here.

    ``auto`` honours the ``WEAKBEAM_DEVICE`` environment variable, then picks cuda, mps, cpu.
    A device that is not available is a :class:`WeakbeamError`.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    if name == "auto":
        env = os.environ.get("WEAKBEAM_DEVICE", "").strip().lower()
        if env and env != "auto":
            return resolve_device(env)
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise WeakbeamError(f"device {name!r} was asked for but no CUDA GPU is available here (use --device cpu or auto)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise WeakbeamError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        return dev
    if kind == "mps":
        if not _mps_available():
            raise WeakbeamError(f"device {name!r} was asked for but Apple MPS is not available here (use --device cpu or auto)")
        return torch.device("mps")
    raise WeakbeamError(f"unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")
