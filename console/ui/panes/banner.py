"""The decision banner: what the runbook says to do now, and the row that fired.

Large and high contrast: a solid block in the action's severity colour, the
headline in big letters so it reads from across a room.
"""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Static

from console.incident import Phase
from console.model import Action, Decision, ServiceView, image_tag

from ..updates import set_content
from .bigtext import big_lines, big_width, can_draw, spaced
from .format import SEVERITY, clock_time, countdown

TALL_SCREEN_ROWS = 50
"""From this many terminal rows the banner's letters are five rows tall instead of three."""

_SEVERITY_CLASSES = tuple(sorted(f"-{name}" for name in set(SEVERITY.values())))


class DecisionBanner(Vertical):
    """The runbook's verdict for the selected service."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._decision: Decision | None = None
        self._service = ""
        self._progress: str | None = None
        self._hint = ""
        self._now: datetime | None = None
        self._phase: Phase | None = None
        self._writes_frozen = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="banner-top"):
            yield Static("WAITING FOR THE FIRST REFRESH", id="headline", markup=False)
            yield Static("", id="banner-service", markup=False)
        yield Static("", id="subheadline", markup=False)
        yield Static("", id="reasons", markup=False)
        yield Static("", id="detail", markup=False)

    @property
    def headline_text(self) -> str:
        """The headline in plain words (what the big letters say)."""
        if self._decision is None:
            return ""
        if self._phase is not None:
            return self._phase.headline
        headline = self._decision.headline
        if self._decision.freeze_writes and not self._writes_frozen:
            headline += " + FREEZE WRITES"
        return headline

    def on_resize(self) -> None:
        # After the resize settles: an update made during layout keeps a stale height.
        self.call_after_refresh(self._render_headline)

    def set_phase(self, phase: Phase | None, writes_frozen: bool = False) -> None:
        """The rollback's lifecycle phase, which leads over the signals' verdict
        while it lasts (None: the verdict leads); `writes_frozen`: writes are
        already frozen, so the headline does not ask for it again."""
        changed = (phase is None) != (self._phase is None) or (phase and self._phase and
                                                                phase.headline != self._phase.headline)
        self._phase, self._writes_frozen = phase, writes_frozen
        if changed and self._decision is not None:
            self._set_severity()
            self._render_headline()
        self._render_detail()

    def _set_severity(self) -> None:
        if self._decision is None:
            return
        severity = "sev-warning" if self._phase is not None and self._phase.headline == "ROLLING BACK" else (
            "sev-info" if self._phase is not None else SEVERITY[self._decision.action])
        for cls in _SEVERITY_CLASSES:
            self.set_class(cls == f"-{severity}", cls)

    def show(self, view: ServiceView, now: datetime, hint: str = "", lead: str = "") -> None:
        """Show the decision of `view`; `hint` says which key acts on it; `lead`
        says why this service leads (pinned, or the most urgent of several)."""
        self._decision = view.decision
        self._service = view.snapshot.service
        self._hint = hint
        self._now = now
        self._set_severity()
        self._render_headline()
        current = view.snapshot.current_revision
        side = [Content.styled(view.snapshot.service, "bold")]
        if current is not None:
            versions = ", ".join(image_tag(i) for i in current.images)
            side.append(Content(f"{current.label} · {versions}"))
        if view.decision.unavailable:
            missing = ", ".join(m.signal for m in view.decision.unavailable)
            side.append(Content.styled(f"no {missing}", "bold"))
        elif view.decision.stale:
            side.append(Content.styled("signals stale", "bold"))
        if lead:
            side.append(Content.styled(lead, "bold"))
        set_content(self.query_one("#banner-service", Static), Content("\n").join(side))
        reasons = view.decision.reasons
        if reasons:
            lines = [
                Content.assemble((str(reason), "bold"), (f"   — runbook: {reason.table.value}", ""))
                for reason in reasons[:3]
            ]
            set_content(self.query_one("#reasons", Static), Content("\n").join(lines))
        else:
            set_content(self.query_one("#reasons", Static), "No runbook row fired.")
        self._render_detail()

    def set_progress(self, text: str | None) -> None:
        """Show a running rollback's latest step (None: none running)."""
        self._progress = text
        self._render_detail()

    def tick(self, now: datetime) -> None:
        """Update the time-dependent parts (the investigation countdown)."""
        self._now = now
        self._render_detail()

    def _render_headline(self) -> None:
        headline = self.headline_text
        if not headline:
            return
        available = self.content_size.width - 24  # room left of the service name
        # The banner grows with the screen: five-row letters once the terminal is tall enough.
        scale = 2 if self.app.size.height >= TALL_SCREEN_ROWS else 1
        sub = ""
        big = headline
        if big_width(big, scale) > available and ": " in big:
            big, sub = big.split(": ", 1)
        if scale > 1 and not (can_draw(big) and big_width(big, scale) <= available):
            scale = 1
        if can_draw(big) and big_width(big, scale) <= available:
            set_content(self.query_one("#headline", Static), "\n".join(big_lines(big, scale)))
        else:
            big = spaced(headline) if len(spaced(headline)) <= available else headline
            sub = ""
            set_content(self.query_one("#headline", Static), Content.styled(big, "bold"))
        subheadline = self.query_one("#subheadline", Static)
        set_content(subheadline, Content.styled(sub, "bold"))
        subheadline.display = bool(sub)

    def _render_detail(self) -> None:
        decision, now = self._decision, self._now
        if decision is None:
            return
        parts: list[str] = []
        if self._phase is not None:
            parts.append(self._phase.detail if not self._progress else f"Rolling back: {self._progress}")
            parts.append("the signals below still include the bad version")
        elif self._progress:
            parts.append(f"Rolling back: {self._progress}")
        else:
            if decision.action == Action.INVESTIGATE and decision.deadline is not None and now is not None:
                parts.append(f"Decide by {clock_time(decision.deadline)} UTC ({countdown(decision.deadline, now)})")
            if self._hint:
                parts.append(self._hint)
            if decision.alternatives:
                parts.append("Alternatives: " + "; ".join(decision.alternatives))
        set_content(self.query_one("#detail", Static), "   ·   ".join(parts))
