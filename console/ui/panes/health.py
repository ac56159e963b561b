"""The health pane: ready/desired pods and the service's health endpoint."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Digits, Static

from console.model import Health, ServiceView

from ..updates import set_content, set_digits
from .format import NO_VALUE, age, millis


def _count(value: int | None) -> str:
    return NO_VALUE if value is None else str(value)


class HealthPane(Vertical):
    """Pods ready out of desired, and what the health endpoint answered."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="figure"):
            yield Digits(NO_VALUE, id="ready-digits")
            yield Static(NO_VALUE, id="ready-plain", classes="plain-figure", markup=False)
            yield Static("", id="ready-of", classes="unit", markup=False)
        yield Static("", id="pods-caption", classes="below", markup=False)
        yield Static("", id="endpoint", markup=False)

    def show(self, view: ServiceView, now: datetime) -> None:
        """Render one service's health."""
        health = view.snapshot.health
        ready = self.query_one("#ready-digits", Digits)
        set_digits(ready, _count(health.ready))
        all_ready = health.desired is not None and health.ready == health.desired and health.desired > 0
        plain = self.query_one("#ready-plain", Static)
        set_content(plain, f"{_count(health.ready)}/{_count(health.desired)} ready")
        for widget in (ready, plain):
            widget.set_class(health.completely_down, "-sev-critical")
            widget.set_class(not health.completely_down and not all_ready, "-sev-warning")
            widget.set_class(all_ready and not health.completely_down, "-sev-ok")
        set_content(self.query_one("#ready-of", Static), f"of {_count(health.desired)} ready")
        pods = [Content.styled(f"{_count(health.updated)} updated · {_count(health.available)} available", "$sev-muted")]
        if health.error:
            pods.append(Content.styled(health.error, "$sev-warning"))
        if health.deployment_failing:
            pods.append(Content.styled(f"⚠ {health.deployment_failing}", "$sev-warning"))
        set_content(self.query_one("#pods-caption", Static), Content("\n").join(pods))
        set_content(self.query_one("#endpoint", Static), self._endpoint(health, now))

    @staticmethod
    def _endpoint(health: Health, now: datetime) -> Content:
        if health.endpoint_ok is None:
            return Content.styled("Health endpoint\nnot configured", "$sev-muted")
        mark, style = ("●", "bold $sev-ok") if health.endpoint_ok else ("●", "bold $sev-critical")
        status = health.endpoint_status or ("healthy" if health.endpoint_ok else "unhealthy")
        first = [Content.styled(f"{mark} {status}", style)]
        if health.endpoint_latency_ms is not None:
            first.append(Content(f"  {millis(health.endpoint_latency_ms)}"))
        lines = [Content.styled("Health endpoint", "$sev-muted"), Content.assemble(*first)]
        if health.checked_at is not None:
            lines.append(Content.styled(f"checked {age(health.checked_at, now)}", "$sev-muted"))
        return Content("\n").join(lines)
