"""User-facing errors: one line that names the problem, never a traceback for a user mistake."""

from __future__ import annotations


class WeakbeamError(Exception):
    """A problem with the user's input (file, dataset path, parameters, labels, model file).

    The message is one line, names the file or value at fault and says what is wrong. The CLI
    prints it as ``error: <message>`` and exits with status 2; the napari widgets show it as a
    notification.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
