"""User-facing messages from the widgets: one-line notifications, never a traceback for a user
mistake (a :class:`WeakbeamError`)."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from napari.utils.notifications import show_error, show_info, show_warning

from ..core.errors import WeakbeamError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["report_errors", "show_worker_error", "show_error", "show_info", "show_warning"]


def report_errors(func: F) -> F:
    """Decorate a slot: a WeakbeamError becomes an error notification (the slot returns None)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except WeakbeamError as exc:
            show_error(str(exc))
            return None

    return wrapper  # type: ignore[return-value]


def show_worker_error(exc: BaseException) -> None:
    """Slot for a worker's ``errored`` signal."""
    if isinstance(exc, WeakbeamError):
        show_error(str(exc))
    else:
        show_error(f"{type(exc).__name__}: {exc}")
