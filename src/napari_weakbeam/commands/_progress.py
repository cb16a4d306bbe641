"""Progress bars that suit where they are shown: tqdm on a terminal, plain lines elsewhere.

Written to a log file, a pipe or a batch job's output, tqdm's redraws (carriage returns and
``ESC[A`` cursor moves for nested bars) become stray characters. There, :func:`tqdm` returns a
:class:`PlainProgress` instead: one ``desc: n/total unit`` line every ``interval`` seconds and one
when the work is complete; a run that fails early prints nothing but its error.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

#: Seconds between two plain progress lines.
INTERVAL_S = 10.0


class PlainProgress:
    """The part of tqdm's interface the commands use, printing plain periodic lines."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
                 file: TextIO | None = None, interval: float = INTERVAL_S, final_line: bool = True, **_: Any):
        self.total, self.desc, self.unit, self.n = total, desc, unit, int(initial)
        self.file = file if file is not None else sys.stderr
        self.interval = interval
        self._last = time.monotonic()
        self._postfix = ""
        self._closed = not final_line

    def _line(self) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        post = f" ({self._postfix})" if self._postfix else ""
        return f"{self.desc + ': ' if self.desc else ''}{self.n}{total} {self.unit}{post}"

    def _maybe_print(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(self._line(), file=self.file, flush=True)

    def update(self, n: int | float = 1) -> None:
        self.n += int(n)
        self._maybe_print()

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kw: Any) -> None:
        items = {**(ordered_dict or {}), **kw}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def reset(self, total: int | None = None) -> None:
        self.n = 0
        if total is not None:
            self.total = total

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if not self._closed and self.total is not None and self.n >= self.total > 0:
            print(self._line(), file=self.file, flush=True)
        self._closed = True

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.tqdm`` when its stream is a terminal (or it is disabled), else :class:`PlainProgress`."""
    import tqdm as _tqdm

    stream = kwargs.get("file") or sys.stderr
    if kwargs.get("disable") or _isatty(stream):
        return _tqdm.tqdm(*args, **kwargs)
    if kwargs.get("leave") is False:  # an inner bar (frames of a layer): the outer one reports
        kwargs["interval"] = float("inf")
        kwargs["final_line"] = False
    if args:
        kwargs.setdefault("total", len(args[0]) if hasattr(args[0], "__len__") else None)
    return PlainProgress(**{k: v for k, v in kwargs.items() if k not in ("disable", "leave", "position", "dynamic_ncols")})


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
