"""User-facing messages from the widgets: one-line notifications, never a traceback for a user
mistake (a :class:`WeakbeamError`), and the same line in the status line of the widget that failed
(a toast vanishes; the status line stays until the next action)."""

from __future__ import annotations

import functools
import html
from typing import Any, Callable, TypeVar

from napari.utils.notifications import show_error, show_info, show_warning

from ..core.errors import WeakbeamError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["report_errors", "show_worker_error", "worker_error_to", "set_status", "error_text",
           "show_error", "show_info", "show_warning"]

ERROR_COLOUR = "#e06c75"


def error_text(exc: BaseException) -> str:
    """The one line shown for ``exc`` (a WeakbeamError's message; else its type too)."""
    return str(exc) if isinstance(exc, WeakbeamError) else f"{type(exc).__name__}: {exc}"


def set_status(widget: Any, text: str, error: bool = False) -> None:
    """Show ``text`` in ``widget.status_label`` (if it has one), in red for an error."""
    label = getattr(widget, "status_label", None)
    if label is None:
        return
    try:
        label.setText(f"<span style='color:{ERROR_COLOUR}'>{html.escape(text, quote=False)}</span>" if error else text)
    except RuntimeError:  # the widget was closed meanwhile
        pass


def report_errors(func: F) -> F:
    """Decorate a slot: a WeakbeamError becomes an error notification and the status line of the
    widget (the slot's ``self``) says it too; the slot returns None."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except WeakbeamError as exc:
            show_error(str(exc))
            if args:
                set_status(args[0], str(exc), error=True)
            return None

    return wrapper  # type: ignore[return-value]


def show_worker_error(exc: BaseException) -> None:
    """Slot for a worker's ``errored`` signal."""
    show_error(error_text(exc))


def worker_error_to(widget: Any) -> Callable[[BaseException], None]:
    """Slot for a worker's ``errored`` signal that also writes the error in ``widget``'s status line."""

    def slot(exc: BaseException) -> None:
        show_error(error_text(exc))
        set_status(widget, error_text(exc), error=True)

    return slot
