"""Small builders for the widgets' controls and their workers, so a widget file reads as its layout.

Each builder makes one Qt control with its tooltip (and connects it when given a slot); :func:`on`
connects a widget to a session signal until the widget is deleted; :func:`start_worker` runs a
napari thread worker whose errors go to the widget's status line.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._notify import worker_error_to


def button(text: str, tip: str = "", slot: Callable[[], Any] | None = None) -> QPushButton:
    """A push button; ``slot`` is called with no arguments on a click."""
    b = QPushButton(text)
    b.setToolTip(tip)
    if slot is not None:
        b.clicked.connect(lambda *_: slot())
    return b


def label(text: str = "") -> QLabel:
    """A word-wrapping label."""
    w = QLabel(text)
    w.setWordWrap(True)
    return w


def check(text: str, checked: bool = False, tip: str = "") -> QCheckBox:
    c = QCheckBox(text)
    c.setChecked(checked)
    c.setToolTip(tip)
    return c


def combo(items: Iterable[str], tip: str = "") -> QComboBox:
    c = QComboBox()
    c.addItems(list(items))
    c.setToolTip(tip)
    return c


def spin(lo: int, hi: int, value: int, suffix: str = "", tip: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setSuffix(suffix)
    s.setToolTip(tip)
    return s


def float_spin(lo: float, hi: float, value: float, *, decimals: int = 2, step: float = 0.1, suffix: str = "",
               special: str = "", tip: str = "") -> QDoubleSpinBox:
    """A float spin box; ``special``: the text shown at the minimum (e.g. "unknown")."""
    s = QDoubleSpinBox()
    s.setDecimals(decimals)
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setValue(value)
    s.setSuffix(suffix)
    s.setSpecialValueText(special)
    s.setToolTip(tip)
    return s


def line_edit(placeholder: str, tip: str = "") -> QLineEdit:
    e = QLineEdit()
    e.setPlaceholderText(placeholder)
    e.setToolTip(tip)
    return e


def single_shot(parent: QWidget, ms: int, slot: Callable[[], Any]) -> QTimer:
    """A timer that calls ``slot`` once, ``ms`` after its last start (a restart postpones it)."""
    t = QTimer(parent)
    t.setSingleShot(True)
    t.setInterval(ms)
    t.timeout.connect(slot)
    return t


def _add(layout: Any, item: QWidget | QLayout, *args: Any) -> None:
    if isinstance(item, QLayout):
        layout.addLayout(item, *args)
    else:
        layout.addWidget(item, *args)


def row(*items: QWidget | QLayout, stretch: int | None = None) -> QHBoxLayout:
    """Items side by side; ``stretch``: the index of the one that takes the room left."""
    layout = QHBoxLayout()
    for i, item in enumerate(items):
        _add(layout, item, 1 if i == stretch else 0)
    return layout


def form(*rows: tuple[str, QWidget | QLayout] | QWidget) -> QFormLayout:
    """(label, field) rows; a bare widget spans the row."""
    layout = QFormLayout()
    for r in rows:
        if isinstance(r, tuple):
            layout.addRow(r[0], r[1])
        else:
            layout.addRow(r)
    return layout


def grid(*cells: tuple[QWidget | QLayout, int, int] | tuple[QWidget | QLayout, int, int, int, int]) -> QGridLayout:
    """(item, row, col[, row span, col span]) cells."""
    layout = QGridLayout()
    for item, *where in cells:
        _add(layout, item, *where)
    return layout


def column(parent: QWidget | None, *items: QWidget | QLayout, stretch: bool = True) -> QVBoxLayout:
    """Items one below the other in ``parent`` (a stretch below them by default)."""
    layout = QVBoxLayout(parent) if parent is not None else QVBoxLayout()
    for item in items:
        _add(layout, item)
    if stretch:
        layout.addStretch(1)
    return layout


def on(widget: QWidget, signal: Any, slot: Callable[..., Any]) -> None:
    """Connect ``slot`` (a method of ``widget``) to a session signal for as long as ``widget``
    lives (the session outlives a closed dock)."""
    signal.connect(slot)
    widget.destroyed.connect(lambda *_: signal.disconnect(slot))


def start_worker(widget: QWidget, job: Callable[..., Any], *args: Any, yielded: Callable | None = None,
                 returned: Callable | None = None, finished: Callable | None = None, **kwargs: Any) -> Any:
    """Run ``job(*args, **kwargs)`` in a napari thread worker; its errors are notifications and the
    red status line of ``widget``. Returns the started worker."""
    worker = create_worker(job, *args, **kwargs)
    for signal, slot in (("yielded", yielded), ("returned", returned)):
        if slot is not None:
            getattr(worker, signal).connect(slot)
    worker.errored.connect(worker_error_to(widget))
    if finished is not None:
        worker.finished.connect(finished)
    worker.start()
    return worker
