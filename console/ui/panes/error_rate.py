"""The error-rate pane: the value now, large, and a chart of recent minutes
with the runbook's two lines drawn across it (investigate at 1 %, roll back
above 5 %, or whatever the config's thresholds say)."""

from __future__ import annotations

from datetime import datetime, timedelta

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Digits, Static

from console.model import NO_SAMPLES, Point, Samples, ServiceView, epoch

from ..updates import set_content, set_digits
from .format import rate_number

_EIGHTHS = " ▁▂▃▄▅▆▇█"
_AXIS_WIDTH = 6  # "10 % ┤": room for the threshold labels

CHART_WINDOW = timedelta(minutes=15)
"""The time the chart spans, whatever its width (a wider pane draws finer columns, not more minutes)."""


def columns(points: Samples | tuple[Point, ...], now: datetime, width: int, window: timedelta = CHART_WINDOW) -> list[float | None]:
    """The samples of the last `window` in `width` columns of equal time, oldest
    first: each column the highest rate seen in it (a spike never averages
    away), the previous sample's where none fell, None before the first."""
    samples = Samples.of(points)
    end = epoch(now)
    start = end - window.total_seconds()
    step = window.total_seconds() / width
    out: list[float | None] = [None] * width
    for at, value in zip(samples.times, samples.values):
        if at < start or at > end:
            continue
        index = min(width - 1, int((at - start) / step))
        current = out[index]
        out[index] = value if current is None else max(current, value)
    # A rate holds until its next sample: columns between samples show the last one (no dotted bars).
    last: float | None = None
    for index, value in enumerate(out):
        if value is None:
            out[index] = last
        else:
            last = value
    return out


def _label(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def severity_of(value: float, investigate: float, rollback: float) -> str:
    """The theme variable for an error rate, by the runbook's bands."""
    if value > rollback:
        return "sev-critical"
    if value >= investigate:
        return "sev-warning"
    return "sev-ok"


class ThresholdChart(Widget):
    """A bar chart of error-rate samples over the last CHART_WINDOW (columns of
    equal time, newest on the right) on a fixed scale of 0 to twice the rollback threshold, so the
    threshold lines never move between refreshes. Values above the scale are
    drawn full height."""

    DEFAULT_CSS = """
    ThresholdChart { height: 1fr; min-height: 4; }
    """

    def __init__(self, investigate: float, rollback: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.investigate = investigate
        self.rollback = rollback
        self.top = rollback * 2
        self._points: Samples = NO_SAMPLES
        self._now: datetime | None = None

    def set_points(self, points: Samples, now: datetime) -> None:
        """Show these samples (oldest first)."""
        self._points = points
        self._now = now
        self.refresh()

    def threshold_rows(self, height: int) -> dict[int, float]:
        """Row index (0 at the top) of each threshold line for a chart `height` rows tall.
        A threshold's row is the one whose band starts at it, so a bar that
        reaches into that row is above the threshold."""
        rows: dict[int, float] = {}
        for threshold in (self.investigate, self.rollback):  # rollback wins a shared row
            band = min(height - 1, int(threshold / self.top * height))
            rows[height - 1 - band] = threshold
        return rows

    def render(self) -> Content:
        height = max(1, self.size.height - 1)  # the last row is the time axis
        width = max(1, self.size.width - _AXIS_WIDTH)
        if not self._points or self._now is None:
            return Content.styled("No error-rate history yet.", "$sev-muted")
        values = columns(self._points, self._now, width)
        lines_rows = self.threshold_rows(height)
        band = self.top / height
        lines: list[Content] = []
        for row in range(height):
            floor = self.top * (height - 1 - row) / height
            threshold = lines_rows.get(row)
            if threshold is not None:
                line_style = "$sev-critical" if threshold == self.rollback else "$sev-warning"
                axis = Content.styled(f"{_label(threshold):>4} ┤", f"bold {line_style}")
            else:
                line_style = ""
                axis = Content.styled(f"{'':>4} │", "$sev-muted")
            cells: list[tuple[str, str]] = []
            for value in values:
                if value is None:
                    cells.append(("╌" if threshold is not None else " ", line_style))
                    continue
                filled = (value - floor) / band
                if filled >= 1:
                    char = "█"
                elif filled > 0:
                    char = _EIGHTHS[int(filled * 8)]
                    if char == " " and row == height - 1:
                        char = "▁"  # a tiny rate still shows a baseline
                else:
                    char = " "
                if char == " ":
                    cells.append(("╌" if threshold is not None else " ", line_style))
                else:
                    cells.append((char, f"${severity_of(value, self.investigate, self.rollback)}"))
            lines.append(Content.assemble(axis, *cells))
        left = f"{int(CHART_WINDOW.total_seconds() // 60)}m ago"
        axis_text = f"{left:<{max(0, width - 3)}}now"
        lines.append(Content.styled(f"{'':>{_AXIS_WIDTH}}{axis_text}", "$sev-muted"))
        return Content("\n").join(lines)


class ErrorRatePane(Vertical):
    """Current error rate in large digits, its band, and the threshold chart."""

    def __init__(self, investigate: float, rollback: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.investigate = investigate
        self.rollback = rollback

    def compose(self) -> ComposeResult:
        with Horizontal(classes="figure"):
            yield Digits("—", id="error-rate-digits")
            yield Static("— %", id="error-rate-plain", classes="plain-figure", markup=False)
            yield Static("%", classes="unit")
            yield Static("", id="error-rate-caption", classes="caption", markup=False)
        yield ThresholdChart(self.investigate, self.rollback, id="error-rate-chart")

    def show(self, view: ServiceView, now: datetime) -> None:
        """Render one service's error rate."""
        metrics = view.snapshot.metrics
        value = metrics.error_rate
        digits = self.query_one("#error-rate-digits", Digits)
        plain = self.query_one("#error-rate-plain", Static)
        set_digits(digits, rate_number(value))
        set_content(plain, f"{rate_number(value)} %")
        for severity in ("sev-critical", "sev-warning", "sev-ok"):
            on = value is not None and severity == severity_of(value, self.investigate, self.rollback)
            digits.set_class(on, f"-{severity}")
            plain.set_class(on, f"-{severity}")
        caption: list[Content] = [
            Content.styled(f"rollback above {_label(self.rollback)}", "$sev-critical"),
            Content.styled(f"investigate from {_label(self.investigate)}", "$sev-warning"),
        ]
        if metrics.request_rate is not None:
            caption.append(Content(f"{metrics.request_rate:.0f} req/s"))
        if metrics.error:
            caption.append(Content.styled(metrics.error, "$sev-warning"))
        elif view.snapshot.stale:
            caption.append(Content.styled("stale: values are old", "bold $sev-warning"))
        elif value is None:
            caption.append(Content.styled("no value", "$sev-muted"))
        if not view.snapshot.signals.history_loaded:
            caption.append(Content.styled("30-min history loading: intermittent errors not judged yet", "$sev-muted"))
        set_content(self.query_one("#error-rate-caption", Static), Content("\n").join(caption))
        self.query_one(ThresholdChart).set_points(metrics.error_rate_history, now)
