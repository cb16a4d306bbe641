"""The live loss / accuracy chart of the Train widget, painted with QPainter.

A matplotlib redraw costs 70-500 ms of GUI-thread time on two busy cores, which would freeze the
viewer during training; this chart repaints in a few milliseconds, so it can follow every batch.
"""

from __future__ import annotations

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS = QColor("#e06c75")
ACCURACY = QColor("#98c379")
AXES = QColor("#5a5f6a")
TEXT = QColor("#d6d6d6")
LEFT = 40  # px left of the plot for the loss axis labels


def axis_number(value: float) -> str:
    """A short axis label that fits the margin: 0.52, 3.1, 4e-04 (never a clipped 0.00041)."""
    if value == 0 or 0.01 <= abs(value) < 1000:
        return f"{value:.2g}"
    return f"{value:.0e}"


class LiveCurves(QWidget):
    """Training loss (left axis, auto-scaled) and accuracy (right axis, 0-1) against epoch.

    Batches are lines; validation values (one per epoch) are dots.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.clear()

    def clear(self) -> None:
        self.steps: list[float] = []
        self.loss: list[float] = []
        self.accuracy: list[float] = []
        self.val_steps: list[float] = []
        self.val_loss: list[float] = []
        self.val_accuracy: list[float] = []
        self.epochs = 1
        self.update()

    def add(self, step: float, loss: float, accuracy: float) -> None:
        self.steps.append(step)
        self.loss.append(loss)
        self.accuracy.append(accuracy)

    def add_validation(self, step: float, loss: float, accuracy: float) -> None:
        self.val_steps.append(step)
        self.val_loss.append(loss)
        self.val_accuracy.append(accuracy)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(p.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        plot = QRectF(self.rect()).adjusted(LEFT, 8, -34, -20)
        p.setPen(QPen(AXES, 1))
        p.drawRect(plot)
        x_max = max([float(self.epochs)] + self.steps + self.val_steps)
        finite = [v for v in self.loss + self.val_loss if v == v and v != float("inf")]
        loss_max = max(finite) * 1.1 if finite else 1.0

        def point(x: float, y: float, top: float) -> QPointF:
            return QPointF(plot.left() + plot.width() * x / x_max, plot.bottom() - plot.height() * min(y, top) / top)

        for xs, ys, top, colour in (
            (self.steps, self.loss, loss_max, LOSS),
            (self.steps, self.accuracy, 1.0, ACCURACY),
        ):
            pts = [(x, y) for x, y in zip(xs, ys) if y == y]
            if len(pts) > 1:
                path = QPainterPath(point(*pts[0], top))
                for x, y in pts[1:]:
                    path.lineTo(point(x, y, top))
                p.setPen(QPen(colour, 1.2))
                p.drawPath(path)
        for xs, ys, top, colour in (
            (self.val_steps, self.val_loss, loss_max, LOSS),
            (self.val_steps, self.val_accuracy, 1.0, ACCURACY),
        ):
            p.setPen(QPen(colour, 1))
            p.setBrush(colour)
            for x, y in zip(xs, ys):
                if y == y:
                    p.drawEllipse(point(x, y, top), 2.5, 2.5)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(LOSS)
        p.drawText(QRectF(0, plot.top() - 4, LEFT - 2, 14), Qt.AlignmentFlag.AlignRight, axis_number(loss_max))
        p.drawText(QRectF(0, plot.bottom() - 10, LEFT - 2, 14), Qt.AlignmentFlag.AlignRight, "0")
        p.drawText(QRectF(0, plot.center().y() - 7, LEFT - 2, 14), Qt.AlignmentFlag.AlignRight, "loss")
        p.setPen(ACCURACY)
        right = plot.right() + 3
        p.drawText(QRectF(right, plot.top() - 4, 32, 14), Qt.AlignmentFlag.AlignLeft, "100%")
        p.drawText(QRectF(right, plot.bottom() - 10, 32, 14), Qt.AlignmentFlag.AlignLeft, "0%")
        p.drawText(QRectF(right, plot.center().y() - 7, 32, 14), Qt.AlignmentFlag.AlignLeft, "acc.")
        p.setPen(TEXT)
        p.drawText(QRectF(plot.left(), plot.bottom() + 3, plot.width(), 14), Qt.AlignmentFlag.AlignCenter,
                   f"epoch (0 to {x_max:g}); dots: validation")
        p.end()
