"""The latency pane: p95 now, large; p95 before the deploy; recent minutes."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Digits, Sparkline, Static

from console.model import ServiceView

from ..updates import set_content, set_digits
from .format import NO_VALUE, millis


def large_figure(ms: float | None) -> tuple[str, str]:
    """A latency in at most three digits and its unit, for the pane's large figure:
    milliseconds below a second, then seconds ("2.0" s, "12" s), so that the
    figure is never wider than the pane and cut to something else (2000 to "200")."""
    if ms is None:
        return NO_VALUE, "ms"
    if ms < 999.5:
        return f"{ms:.0f}", "ms"
    seconds = ms / 1000
    return (f"{seconds:.1f}" if seconds < 9.95 else f"{seconds:.0f}"), "s"


class LatencyPane(Vertical):
    """p95 latency now against the p95 before the deploy under suspicion."""

    def __init__(self, spike_factor: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spike_factor = spike_factor

    def compose(self) -> ComposeResult:
        with Horizontal(classes="figure"):
            yield Digits(NO_VALUE, id="latency-digits")
            yield Static(f"{NO_VALUE} ms", id="latency-plain", classes="plain-figure", markup=False)
            yield Static("ms", id="latency-unit", classes="unit")
        yield Static("", id="latency-caption", classes="below", markup=False)
        yield Sparkline([], id="latency-sparkline")

    def show(self, view: ServiceView, now: datetime) -> None:
        """Render one service's latency."""
        metrics = view.snapshot.metrics
        signals = view.snapshot.signals
        now_ms, before_ms = metrics.latency_p95_ms, metrics.latency_p95_before_ms
        digits = self.query_one("#latency-digits", Digits)
        figure, unit = large_figure(now_ms)
        set_digits(digits, figure)
        plain = self.query_one("#latency-plain", Static)
        set_content(plain, f"{figure} {unit}")
        set_content(self.query_one("#latency-unit", Static), unit)
        digits.set_class(signals.latency_spike, "-sev-warning")
        plain.set_class(signals.latency_spike, "-sev-warning")
        caption = [Content.assemble("before the deploy ", (millis(before_ms), "bold"))]
        factor = signals.latency_factor
        if factor is None and now_ms is not None and before_ms:
            factor = now_ms / before_ms
        if factor is not None:
            spike = signals.latency_spike
            caption.append(
                Content.styled(
                    f"×{factor:.1f}" + (" spike" if spike else ""),
                    "bold $sev-warning" if spike else "$sev-muted",
                )
            )
        caption.append(Content.styled(f"(spike at ×{self.spike_factor:g})", "$sev-muted"))
        set_content(self.query_one("#latency-caption", Static), Content(" ").join(caption))
        self.query_one(Sparkline).data = list(metrics.latency_history.values)
