"""Small matplotlib canvases that follow napari's dark theme."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

FOREGROUND = "#d6d6d6"
BACKGROUND = "#262930"  # napari's dark theme background


class PlotCanvas(FigureCanvasQTAgg):
    """A compact figure with one axes (or two sharing x, with ``twin=True``)."""

    def __init__(self, height: float = 2.4, twin: bool = False):
        # Fixed margins: a layout engine would add tens of ms to every redraw on the GUI thread.
        figure = Figure(figsize=(3.6, height), dpi=90, facecolor=BACKGROUND)
        figure.subplots_adjust(left=0.15, right=0.86 if twin else 0.96, bottom=0.2, top=0.88)
        super().__init__(figure)
        self.axes = figure.add_subplot(111)
        self.twin = self.axes.twinx() if twin else None
        self.style()
        self.setMinimumHeight(int(height * 60))

    def style(self) -> None:
        """Apply the dark theme to every axes (call after ``clear``)."""
        for ax in (self.axes, self.twin):
            if ax is None:
                continue
            ax.set_facecolor(BACKGROUND)
            ax.tick_params(colors=FOREGROUND, labelsize=7)
            ax.xaxis.label.set_color(FOREGROUND)
            ax.yaxis.label.set_color(FOREGROUND)
            ax.xaxis.label.set_size(8)
            ax.yaxis.label.set_size(8)
            ax.title.set_color(FOREGROUND)
            ax.title.set_size(8)
            for spine in ax.spines.values():
                spine.set_color("#5a5f6a")
