"""How many torch threads a job started from the viewer may use: one core stays with the GUI."""

from __future__ import annotations

import os


def gui_friendly_threads(requested: int = 0) -> int:
    """``requested`` if > 0, else all cores but one (at least 1, at most 4)."""
    if requested > 0:
        return requested
    return max(1, min(4, (os.cpu_count() or 2) - 1))
