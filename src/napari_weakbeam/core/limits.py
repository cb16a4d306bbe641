"""Limits checked before any work: patch sizes and the memory a job will need.

A size that cannot work (a patch larger than the frame, a simulation larger than the machine)
is refused up front with one line naming the size and the limit, instead of a numpy
``Unable to allocate`` traceback or the kernel killing the process minutes later.
"""

from __future__ import annotations

import os

from .errors import WeakbeamError

#: The smallest patch the classifier works on (its network pools twice: 8 pixels).
MIN_PATCH = 8
#: Share of the available memory a job may plan to use.
MEMORY_SHARE = 0.8


def check_patch_size(patch_size: int, frame_shape: tuple[int, int] | None = None, *,
                     option: str = "--patch-size", minimum: int = MIN_PATCH) -> int:
    """``patch_size`` as an int, or a WeakbeamError if it is below ``minimum`` or larger than the
    frame (a patch must fit in the frame: a 1 x 1 grid of a padded frame classifies nothing)."""
    p = int(patch_size)
    if p < minimum:
        raise WeakbeamError(f"{option} {p}: a patch must be at least {minimum} pixels")
    if frame_shape is not None:
        rows, cols = (int(s) for s in frame_shape)
        if p > min(rows, cols):
            raise WeakbeamError(
                f"{option} {p}: larger than the {rows} x {cols} frames (at most {min(rows, cols)} pixels)"
            )
    return p


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable, cgroup limit), or None."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            import psutil

            avail = int(psutil.virtual_memory().available)
        except Exception:  # psutil missing or unsupported platform
            return None
    for cg in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(cg) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < avail:
            avail = int(text)
    return avail


def format_bytes(n: float) -> str:
    """``37.3 GiB``, ``512 MiB`` ..."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_memory(nbytes: float, what: str, advice: str = "") -> None:
    """Refuse a job estimated to need ``nbytes`` when that is more than the machine has.

    ``WEAKBEAM_MEMORY_LIMIT`` (bytes) overrides what is measured (for tests and shared nodes)."""
    env = os.environ.get("WEAKBEAM_MEMORY_LIMIT")
    avail = int(float(env)) if env else available_memory()
    if avail is None:
        return
    limit = MEMORY_SHARE * avail
    if nbytes > limit:
        tail = f"; {advice}" if advice else ""
        raise WeakbeamError(
            f"{what} needs about {format_bytes(nbytes)} of memory, more than the {format_bytes(limit)} "
            f"this machine can give it{tail}"
        )


def simulation_bytes(rows: int, cols: int, frames: int) -> float:
    """Peak memory of simulating one layer (measured: ~9 bytes per voxel plus ~190 per pixel)."""
    return float(rows) * float(cols) * (8.0 * frames + 200.0)


def classify_bytes(frame_shape: tuple[int, int], patch_size: int, block_frames: int = 1) -> float:
    """Peak memory of classifying a block of frames (measured: ~25 bytes per padded pixel)."""
    rows, cols = frame_shape
    p = max(int(patch_size), 1)
    padded = float(-(-rows // p) * p) * float(-(-cols // p) * p)
    return padded * 32.0 * max(block_frames, 1)


def layer_bytes(n_frames: int, frame_shape: tuple[int, int], per_voxel: float = 12.0) -> float:
    """Memory of one layer held as float working copies (reconstruction, suggestions)."""
    return float(n_frames) * float(frame_shape[0]) * float(frame_shape[1]) * per_voxel
