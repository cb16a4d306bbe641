"""One compact dock for the whole workflow, so napari fits a 1280 x 800 screen.

:class:`WeakbeamPanel` holds the step widgets as tabs in the workflow order (Annotate, Train,
Predict, 3D) above the rocking-curve plot (a splitter the user can drag); every tab scrolls
vertically instead of stretching the window. Widgets docked one by one from the Plugins menu join
the same tab group (:func:`tabify_when_docked`) instead of stacking down the window.

Where the window is narrower than :data:`ONE_COLUMN_BELOW` (a 1280 px laptop screen), napari's
layer-controls column and a second column of ours would leave the canvas about half the width, so our
docks join napari's column instead: a tab in front of "layer controls", with napari's layer list a
tab too where the window is low (800 px) and below where it is tall. Wider windows keep a column
of ours on the right.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFormLayout,
    QLayout,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    import napari

#: Width of our column on the right of a wide window (napari's own column is ~320 px on the left).
DOCK_WIDTH = 290
#: Windows narrower than this get one column (ours tabbed with napari's layer controls): two columns
#: (~320 + 290 px and their handles) would leave the canvas < 60 % of the width.
ONE_COLUMN_BELOW = 1600
#: Width of that one column; from this window height on, napari's layer list stays below our docks
#: (taking 1 - COLUMN_SHARE of the height), in lower windows it is one more tab of the column.
COLUMN_WIDTH = 350
LIST_BELOW_FROM = 1000
COLUMN_SHARE = 0.75
#: (manifest display name, tab title, module, class) in the workflow order.
STEPS = (
    ("Annotate", "Annotate", "annotate_widget", "AnnotateWidget"),
    ("Train", "Train", "train_widget", "TrainWidget"),
    ("Predictions", "Predict", "predict_widget", "PredictWidget"),
    ("Reconstruct", "3D", "reconstruct_widget", "ReconstructWidget"),
    ("Rocking curve", "Curve", "rocking_widget", "RockingCurveWidget"),
)
_MARK = "_weakbeam_dock"


def widget_class(name: str) -> type[QWidget]:
    """The widget class of a step, by its manifest display name."""
    for step, _title, module, cls in STEPS:
        if step == name:
            return getattr(importlib.import_module(f"napari_weakbeam._napari.{module}"), cls)
    raise KeyError(name)


def compact(widget: QWidget) -> None:
    """Narrow margins and combo boxes sized to a few characters (their lists still show in full)."""
    for combo in widget.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)
    for layout in [widget.layout(), *widget.findChildren(QLayout)]:
        if layout is not None:
            layout.setContentsMargins(4, 4, 4, 4)
            layout.setSpacing(4)
            if isinstance(layout, QFormLayout):  # a field goes below its label when the dock is narrow
                layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a vertical scroll area (never a horizontal one: the dock keeps its width)."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


class WeakbeamPanel(QWidget):
    """Annotate / Train / Predict / 3D tabs above the rocking-curve plot; ``.widgets`` by name."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        setattr(self, _MARK, True)
        self.widgets: dict[str, QWidget] = {}
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setUsesScrollButtons(False)
        for name, title, _module, _cls in STEPS:
            widget = widget_class(name)(viewer)
            compact(widget)
            self.widgets[name] = widget
            if name != "Rocking curve":
                self.tabs.addTab(scrolling(widget), title)
                self.tabs.setTabToolTip(self.tabs.count() - 1, name)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(scrolling(self.widgets["Rocking curve"]))
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self.setMinimumWidth(DOCK_WIDTH)
        self.setMaximumWidth(int(DOCK_WIDTH * 1.6))
        self.installEventFilter(_DockWatcher(self))
        self.tabs.currentChanged.connect(self.fit_tab)

    def fit_tab(self, *args: object) -> None:
        """Split the height so the tab in front shows all its controls where the plot keeps its
        minimum (else the tab scrolls), and at least half of it (called on every tab change)."""
        total = sum(self.splitter.sizes())
        area = self.tabs.currentWidget()
        if total <= 0 or area is None:
            return
        need = area.widget().minimumSizeHint().height() + self.tabs.tabBar().sizeHint().height() + 6
        plot = self.splitter.widget(1).widget().minimumSizeHint().height()
        top = min(max(need, total // 2), total - plot)
        self.splitter.setSizes([top, total - top])

    def showEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt)
        super().showEvent(event)
        QTimer.singleShot(0, self.fit_tab)  # once the dock has its size

    def show_step(self, name: str) -> None:
        """Bring the tab of step ``name`` to the front."""
        for i, (step, *_rest) in enumerate(s for s in STEPS if s[0] != "Rocking curve"):
            if step == name:
                self.tabs.setCurrentIndex(i)


class _DockWatcher(QObject):
    """Event filter: once the widget sits in a dock of the main window, tabify it with ours."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt)
        if event.type() == QEvent.Type.ParentChange:
            QTimer.singleShot(0, lambda w=obj: _tabify(w))
        return False


def _tabify(widget: QWidget) -> None:
    try:
        dock = widget.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        main = dock.parent() if dock is not None else None
    except RuntimeError:  # deleted meanwhile
        return
    if not isinstance(main, QMainWindow):
        return
    if getattr(widget, _MARK, False) and not isinstance(widget, WeakbeamPanel):
        compact(widget)
    napari_docks = _napari_column(main)
    if napari_docks is not None and _window_width(main) < ONE_COLUMN_BELOW:
        _join_napari_column(main, dock, *napari_docks)
        return
    main.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)  # the canvas keeps the rest
    area = main.dockWidgetArea(dock)
    ours = _our_docks(main, area, dock)
    if ours:
        main.tabifyDockWidget(ours[0], dock)
        dock.show()
        dock.raise_()


def _our_docks(main: QMainWindow, area: Qt.DockWidgetArea, dock: QDockWidget) -> list[QDockWidget]:
    """The visible docks of ours (other than ``dock``) in dock area ``area``."""
    found = []
    for other in main.findChildren(QDockWidget):
        if other is dock or not other.isVisible() or main.dockWidgetArea(other) != area:
            continue
        inner = other.widget()
        if inner is not None and (getattr(inner, _MARK, False) or inner.findChild(QWidget, _MARK) is not None):
            found.append(other)
    return found


def _window_width(main: QMainWindow) -> int:
    """The window's width, at most its screen's (a window larger than its screen is cut anyway)."""
    screen = main.screen()
    return min(main.width(), screen.availableGeometry().width()) if screen is not None else main.width()


def _napari_column(main: QMainWindow) -> tuple[QDockWidget, QDockWidget] | None:
    """napari's "layer controls" and "layer list" docks, or None where this napari has no such docks."""
    viewer = getattr(main, "_qt_viewer", None)
    try:
        controls, layers = viewer.dockLayerControls, viewer.dockLayerList
    except AttributeError:
        return None
    if isinstance(controls, QDockWidget) and isinstance(layers, QDockWidget):
        return controls, layers
    return None


def _join_napari_column(main: QMainWindow, dock: QDockWidget, controls: QDockWidget, layers: QDockWidget) -> None:
    """Put ``dock`` in napari's column, :data:`COLUMN_WIDTH` wide: a tab in front of the layer controls
    (or of our docks already there), above the layer list where the window is at least
    :data:`LIST_BELOW_FROM` tall, else with the layer list as one more tab (our panel then has the
    column's whole height)."""
    area = main.dockWidgetArea(controls)
    ours = _our_docks(main, area, dock)
    screen = main.screen()
    room = screen.availableGeometry().height() - (main.frameGeometry().height() - main.height()) if screen else 10**6
    dock.blockSignals(True)  # napari would remember this area as the user's choice for the next session
    try:
        main.addDockWidget(area, dock)
        main.tabifyDockWidget(ours[0] if ours else controls, dock)
        if min(main.height(), room) < LIST_BELOW_FROM and layers not in main.tabifiedDockWidgets(dock):
            main.tabifyDockWidget(dock, layers)
    finally:
        dock.blockSignals(False)
    dock.setWindowTitle(dock.windowTitle().replace(" (napari-weakbeam)", ""))  # the tab's text: short
    dock.show()
    dock.raise_()
    main.resizeDocks([dock], [COLUMN_WIDTH], Qt.Orientation.Horizontal)
    if layers in main.tabifiedDockWidgets(dock):
        # a window grown past the screen while a long dock sat above the list: back within the screen
        QTimer.singleShot(0, lambda: main.resize(main.width(), min(main.height(), room)))
    else:
        height = main.centralWidget().height() if main.centralWidget() is not None else main.height()
        main.resizeDocks([dock, layers], [int(height * COLUMN_SHARE), int(height * (1 - COLUMN_SHARE))],
                         Qt.Orientation.Vertical)


def tabify_when_docked(widget: QWidget) -> None:
    """Mark ``widget`` as ours and tab it with our other docks when it is docked."""
    setattr(widget, _MARK, True)
    widget.setObjectName(_MARK)
    watcher = _DockWatcher(widget)
    widget.installEventFilter(watcher)
