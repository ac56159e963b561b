"""The error-rate chart spans the same minutes at every width."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from console.model import Point
from console.ui.panes.error_rate import CHART_WINDOW, columns

NOW = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)


def test_the_chart_spans_the_same_window_at_every_width() -> None:
    points = tuple(Point(NOW - timedelta(seconds=s), 0.001) for s in range(0, 1800, 15))
    points += (Point(NOW - timedelta(minutes=14), 0.09), Point(NOW - timedelta(seconds=30), 0.08))
    for width in (20, 60, 180):
        cells = columns(points, NOW, width)
        assert len(cells) == width
        # The spike 14 minutes ago is inside the window at every width; nothing older than it is drawn.
        assert max(c for c in cells[: width // 10 + 1] if c is not None) == 0.09
        assert 0.08 in cells[-(width // 30 + 2):]  # 30 s ago: within the last thirtieth of the window
    assert columns((Point(NOW - CHART_WINDOW - timedelta(seconds=1), 0.5),), NOW, 10) == [None] * 10
    assert columns((Point(NOW - timedelta(minutes=10), 0.02),), NOW, 3) == [None, 0.02, 0.02]  # held until now


@pytest.mark.parametrize("ms, shown", [
    (None, ("–", "ms")), (250, ("250", "ms")), (999.4, ("999", "ms")), (999.6, ("1.0", "s")),
    (2000, ("2.0", "s")), (9940, ("9.9", "s")), (9960, ("10", "s")), (125_000, ("125", "s")),
])
def test_the_latency_figure_keeps_to_three_digits_and_says_its_unit(ms, shown):
    """2000 ms in four large digits was wider than the pane on a laptop and cut to "200"."""
    from console.ui.panes.format import NO_VALUE
    from console.ui.panes.latency import large_figure

    expected = (NO_VALUE, "ms") if ms is None else shown
    assert large_figure(ms) == expected
