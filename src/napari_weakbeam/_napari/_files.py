"""File dialogs shared by the dock widgets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog


def with_filter_suffix(path: str, name_filter: str) -> str:
    """``path`` with the extension of the chosen file-dialog filter (``"TIFF stack (*.tif)"``) when
    the user typed a name without one (Qt does not add it on every platform)."""
    if Path(path).suffix:
        return path
    match = re.search(r"\(\*(\.[A-Za-z0-9]+)", name_filter)
    return path + match.group(1) if match else path


def ask_save_path(parent: Any, title: str, default: str, filters: str) -> str | None:
    """Ask for a file to write; the chosen filter's extension is added to a bare name. None: cancelled."""
    path, chosen = QFileDialog.getSaveFileName(parent, title, default, filters)
    if not path:
        return None
    return with_filter_suffix(path, chosen or filters)


def ask_open_path(parent: Any, title: str, filters: str) -> str | None:
    """Ask for an existing file to read. None: cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, title, "", filters)
    return path or None


def ask_yes_no(parent: Any, title: str, question: str) -> bool:
    """A Yes/No question (No is the default answer)."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(parent, title, question, QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes
