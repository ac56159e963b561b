"""The Rollback Console TUI: one screen for a deploy gone bad.

The app owns presentation and keys only. All I/O goes through the `Session`
in thread workers, so the UI's event loop only handles keys and paints:
refreshes run on the session's own event loop, waited for by a thread worker
(the next one is scheduled when the last finishes, so polls never overlap);
plans and rollbacks call the synchronous Kubernetes client. Workers post
messages; handlers here apply them to the panes. Workers never touch widgets.
"""

from __future__ import annotations

import concurrent.futures
import gc
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
import sys
from typing import TYPE_CHECKING, Iterable

from textual import events as textual_events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.constants import MAX_FPS
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from console import heap, incident, locations
from console.comms import MessageKind
from console.decision import Thresholds
from console.incident import RollbackStatus
from console.gate import Ask
from console.model import Action, Event, ServiceView
from console.platforms.base import PlatformError

from . import themes as theme_files, timers
from .messages import (
    OperationFailed,
    PlanReady,
    Refreshed,
    RollbackFinished,
    RollbackProgress,
    TimelineChanged,
    refreshed,
    timeline_changed,
)
from .panes.banner import DecisionBanner
from .panes.error_rate import ErrorRatePane
from .panes.format import clock_time, elapsed, lasted
from .panes.health import HealthPane
from .panes.history import HistoryTable
from .panes.incident import ChecklistPane, EscalationStrip, InvestigationCountdown
from .panes.latency import LatencyPane
from .panes.owner import OwnerStrip
from .panes.routing import AutopilotStrip, LeaseStrip, RoutingPane, pane_width
from .panes.services import ServiceFilter, ServiceTable
from .panes.timeline import ERROR, TimelinePane
from .platform_actions import PlatformActions
from .updates import set_content

# The dialogs (screens/) are imported in the methods that open them: none is
# needed before the first frame (issue 17).

COLLECT_EVERY = 600.0
"""Seconds between the console's full garbage collections, everything frozen
included (see _settle_heap)."""

COLLECT_YOUNG_EVERY = 5.0
"""Seconds between the collector's passes over what came since the last one
(see _settle_heap): the live views and the garbage cycles frames leave."""

COLLECT_WHEN_IDLE = 20.0
"""Seconds without a key or a click before one is taken: never under the operator's fingers."""

DETAILS_YIELD = 0.05
"""Seconds without a key before a refresh's banner and panes are painted (see
_show_details); they wait at most DETAILS_YIELD_MAX in all."""

DETAILS_YIELD_MAX = 0.3

NEVER = 1 << 30
"""The collector's oldest-generation threshold once the console runs them itself (_settle_heap)."""

FIRST_DATA_WAIT = 0.2
"""Seconds the first frame may wait for the first refresh, under way since the
console started (Session.begin_first_refresh): an empty frame, then the same
screen laid out again with the data a moment later, costs more than the wait."""

if TYPE_CHECKING:
    from console.session import Session
    from .screens.message import MessageScreen
    from console.store import OutboxEntry

# If the theme files cannot be found at all, the TCSS variables still need
# values; plain named colours keep the console usable (theme files override).
COMPACT_ROWS = 36
"""Below this many terminal rows the signals and the history/timeline share the space (h switches)."""

NARROW_COLUMNS = 110
"""Below this many columns the service table narrows to its first columns (it scrolls sideways)."""

SERVICES_MAX, SERVICES_NARROW = 84, 36
"""The service table's widest width (at half the screen) and its narrow one (below
NARROW_COLUMNS, or where the signals take the rest), in columns."""

SIGNALS_WIDTH = 76
"""Columns health, error rate and latency need to stay readable (a three-digit figure and
its unit in each, the error-rate legend on two lines): the service table gives them up
first, down to SERVICES_NARROW (its further columns scroll sideways); from 160 columns it
has half the screen.
A blue-green or canary service's routing pane (panes.routing.pane_width) joins them when
the screen has room for both; otherwise it goes to the row below, beside the history."""

RESEND_EVERY_SECONDS = 30.0
"""How often (console clock) kept messages are resent while Slack keeps failing."""

_FALLBACK_VARIABLES = {
    "sev-critical": "red",
    "sev-warning": "yellow",
    "sev-ok": "green",
    "sev-info": "dodgerblue",
    "sev-muted": "grey",
}


class RollbackConsoleApp(PlatformActions, App[None]):
    """The console's main (and only) screen, plus its modals."""

    CSS_PATH = "app.tcss"
    TITLE = "Rollback Console"

    BINDINGS = [
        Binding("r", "rollback", "Roll back", id="rollback"),
        Binding("i", "investigate", "Investigate 5 min", id="investigate"),
        Binding("d", "decide", "Decide", id="decide"),
        Binding("f", "facts", "Facts", id="facts"),
        Binding("m", "messages", "Messages", id="messages"),
        Binding("c", "checklist", "Checklist", id="checklist"),
        Binding("x", "export", "Export", id="export"),
        Binding("n", "note", "Note", id="note"),
        Binding("o", "roles", "Roles", id="roles"),
        # Triage: filter the service table, move in it, pin the highlighted service (Enter on the table).
        Binding("slash", "filter", "Filter", key_display="/", id="filter"),
        Binding("j", "cursor('down')", "Next service", show=False, id="next-service"),
        Binding("k", "cursor('up')", "Previous service", show=False, id="previous-service"),
        # The footer is full at 140 columns: these four are in the keys panel (?) and the palette.
        Binding("v", "revision", "Revision diff", id="revision", show=False),
        Binding("p", "pods", "Pods & logs", id="pods", show=False),
        Binding("w", "writes", "Freeze writes", id="writes", show=False),
        Binding("C", "corruption", "Corruption", key_display="C", id="corruption", show=False),
        # Docker Compose services only (check_action hides it elsewhere).
        Binding("R", "quick_rollback", "Quick rollback (keep previous running)", key_display="R",
                id="quick-rollback", show=False),
        # Drills only (check_action hides it elsewhere): the trainer's controls.
        Binding("T", "trainer", "Trainer", key_display="T", id="trainer", show=False),
        Binding("h", "toggle_lower", "History/timeline", id="history-timeline"),
        Binding("A", "autopilot_pause", "Pause/resume the autopilot (for everyone)", key_display="A",
                id="autopilot", show=False),
        Binding("f5,ctrl+r", "refresh", "Refresh", id="refresh"),
        Binding("t", "change_theme", "Theme", id="theme"),
        Binding("question_mark", "toggle_keys", "Keys", key_display="?", id="keys"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="quit-ctrl"),
    ]

    def __init__(
        self,
        session: Session,
        *,
        theme: str | None = None,
        animate: bool = True,
        user_themes_dir: Path | None = None,
        keymap: dict[str, str] | None = None,
        viewer: bool = False,
    ) -> None:
        super().__init__()
        self.session = session
        # A war-room viewer (`web --follow`): sees everything, changes nothing.
        self.viewer = viewer
        self.animate = animate
        if not animate:
            # Snapshots and war-room screens alike: nothing moves on its own.
            self.animation_level = "none"
        self.thresholds: Thresholds = session.thresholds
        self.views: dict[str, ServiceView] = {}
        self.events: list[Event] = []
        self.selected: str = session.services[0]
        self.rolling_back: str | None = None
        self.last_progress: str | None = None
        self._refresh_timer: Timer | None = None
        self._refresh_again = False
        # See _settle_heap: the last full garbage collection, the operator's last key.
        self._collected_at = self._young_collected_at = time.monotonic()
        self._last_input = float("-inf")
        self._heap_frozen = False
        self._thresholds = gc.get_threshold()  # restored as the app ends
        # The newest refresh not yet applied (see _refreshed).
        self._next_refresh: Refreshed | None = None
        self._seen_errors: set[str] = set()
        # Services rolled back in this session and not yet healthy again: the
        # previous revision is then the bad deploy, so no key hint points at it.
        self._rolled_back: set[str] = set()
        self._sending = None  # the confirmation dialog of the rollback being sent (ConfirmRollbackScreen)
        # Each service's unsent messages, as the last worker read them from the store.
        self._pending: dict[str, list[OutboxEntry]] = {}
        self._updated_at: datetime | None = None
        self._keymap = keymap or {}
        self._startup_notes: list[str] = []
        # The investigation deadline the operator was last asked to decide at (asked once per deadline).
        self._asked_at: datetime | None = None
        self._checklist_shown: bool | None = None  # None: automatic (shown once the rollback completed)
        # A drill's notes already shown, its last verdicts (settled when they agree), its debrief shown once.
        self._drill_notes_shown: set[tuple[datetime, str]] = set()
        self._drill_verdicts: list[tuple[str, ...]] = []
        self._debrief_shown = False
        # The operator's last choice per service (d): which message m offers first.
        self._choices: dict[str, str] = {}
        # When the operator was last reminded to post a status update (console clock).
        self._status_reminded_at: datetime | None = None
        self._install_themes(theme, user_themes_dir)

    # -- themes ----------------------------------------------------------

    def _install_themes(self, wanted: str | None, user_dir: Path | None) -> None:
        loaded, problems = theme_files.load_themes(
            theme_files.shipped_themes_dir(), user_dir or locations.config_dir() / "themes"
        )
        self._file_themes = loaded
        # Only our themes are offered: they all define the severity variables.
        for name in list(self.available_themes):
            if name not in loaded:
                self.unregister_theme(name)
        for theme in loaded.values():
            self.register_theme(theme)
        self._startup_notes.extend(str(p) for p in problems)
        name = wanted or theme_files.DEFAULT_THEME
        if name not in loaded:
            known = ", ".join(sorted(loaded)) or "none found"
            self._startup_notes.append(f"Theme {name!r} was not found (available: {known}); using the default.")
            name = theme_files.DEFAULT_THEME
        if name in loaded:
            self._set_first_theme(name)

    def _set_first_theme(self, name: str) -> None:
        """The theme the app starts with, set before it runs. `self.theme = name`
        would run Textual's watcher, which queues a second parse of the whole
        stylesheet, though the first one (as the app starts) already reads this
        theme's variables: about 12 ms of the first frame (issue 17). So the
        reactive is set without its watcher (Textual's documented way,
        `set_reactive(App.theme, ...)`), and the watcher's other effects are
        done here: the theme's classes and the ANSI colour filter for a dark or
        light theme, and the stylesheet's variables (the app's constructor set
        them from Textual's default theme). Later changes (`t`) go through
        `self.theme` as usual."""
        self.set_reactive(App.theme, name)
        self.stylesheet.set_variables(self.get_css_variables())
        dark = self.current_theme.dark
        self.update_classes({f"-theme-{name}": True, "-dark-mode": dark, "-light-mode": not dark}, update=False)
        self._refresh_truecolor_filter(self.ansi_theme)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """The default theme's severity colours, for themes that lack them."""
        default = getattr(self, "_file_themes", {}).get(theme_files.DEFAULT_THEME)
        return {**_FALLBACK_VARIABLES, **(default.variables if default else {})}

    # -- layout ----------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="titlebar"):
            if self.session.drill:
                yield Static(f"DRILL · {self.session.drill}", id="title-drill", markup=False)
            yield Static("", id="title-left", markup=False)
            yield Static("", id="title-right", markup=False)
        header = Static("", id="incident-header", markup=False)
        header.display = False
        yield header
        writes = Static("", id="writes-frozen", markup=False)
        writes.display = False
        yield writes
        yield EscalationStrip("", id="escalation", markup=False)
        yield DecisionBanner(id="banner")
        countdown = InvestigationCountdown(id="countdown")
        countdown.display = False
        yield countdown
        yield Static("", id="source-errors", markup=False)
        lease = LeaseStrip("", id="lease", markup=False)
        lease.display = False
        yield lease
        owner = OwnerStrip("", id="gitops-owner", markup=False)
        owner.display = False
        yield owner
        paused = AutopilotStrip("", id="autopilot-paused", markup=False)
        paused.display = False
        yield paused
        with Horizontal(id="body"):
            with Vertical(id="services-box") as box:
                box.display = len(self.session.services) > 1
                service_filter = ServiceFilter(placeholder="filter: name or decision (Enter keeps, Esc clears)",
                                       id="service-filter")
                service_filter.display = False
                service_filter.disabled = True  # not focused while hidden (the footer would lose the keys)
                yield service_filter
                services = ServiceTable(self.session.services, id="services")
                services.border_title = "Services (Enter pins)"
                yield services
            with Vertical(id="main"):
                with Horizontal(id="signals"):
                    health = HealthPane(id="health")
                    health.border_title = "Health"
                    yield health
                    routing = RoutingPane("", id="routing", markup=False)
                    routing.display = False
                    yield routing
                    errors = ErrorRatePane(
                        self.thresholds.investigate_error_rate, self.thresholds.rollback_error_rate, id="error-rate"
                    )
                    errors.border_title = "Error rate"
                    yield errors
                    latency = LatencyPane(self.thresholds.latency_spike_factor, id="latency")
                    latency.border_title = "Latency p95"
                    yield latency
                with Horizontal(id="lower"):
                    history = HistoryTable(id="history")
                    history.border_title = "Rollout history"
                    yield history
                    routing = RoutingPane("", id="routing-lower", markup=False)  # where the signals lack room
                    routing.display = False
                    yield routing
                    checklist = ChecklistPane(id="checklist")
                    checklist.border_title = "Post-rollback checklist"
                    checklist.display = False
                    yield checklist
                    timeline = TimelinePane(id="timeline")
                    timeline.border_title = "Timeline (newest first)"
                    yield timeline
        yield Footer()

    def on_mount(self) -> None:
        if self._keymap:
            self.set_keymap(self._keymap)
        for note in self._startup_notes:
            self.notify(note, title="Themes", severity="warning", timeout=10)
        self._render_titlebar()
        self._show_incident()
        self._fit_to_size(self.size.width, self.size.height)
        self.set_interval(1.0, self._tick)
        # The collector waited through start-up (see console/launch.py): it resumes after the first frame.
        self.call_after_refresh(gc.enable)
        first, self.session.first_refresh = self.session.first_refresh, None
        if first is not None:
            # Moments from done, as a rule: wait for it rather than paint empty panes
            # and lay the whole screen out again when the data lands.
            concurrent.futures.wait([first], timeout=FIRST_DATA_WAIT)
        if first is not None and first.done() and first.exception() is None:
            # The first refresh ran while the UI loaded: its views are in the first frame.
            self._apply_refresh(refreshed(self.session, first.result()), details_now=True)
            self._schedule_refresh()
        elif first is not None:
            self._first_refresh_worker(first)
        elif self.session.refreshes_elsewhere:
            # The cycle runs in the refresh process (its first one is under way already): ask now.
            self.request_refresh()
        else:
            # Paint the first frame, then start the first cycle (it imports and
            # connects the sources, which would only delay that frame).
            self.call_after_refresh(self.request_refresh)
        # A rollback the last console left in flight (it was killed): watch it, never issue it again.
        for service in self.session.services:
            if self.session.rollback_in_flight(service):
                self.rolling_back = service
                self.query_one(DecisionBanner).set_progress("resuming the watch of the rollback in flight…")
                self.notify(f"A rollback of {service} was in flight when the console stopped: watching it "
                            "(it is not issued again).", title="Rollback resumed", severity="warning", timeout=15)
                self._resume_worker(service)
                break

    async def on_unmount(self) -> None:
        # Closes the session's clients on its own loop, cancelling a cycle still running.
        await self.session.aclose()
        gc.unfreeze()  # what this app froze (_settle_heap) is the collector's again
        gc.set_threshold(*self._thresholds)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Roll back", "Plan a rollback of the selected service and ask to confirm", self.action_rollback)
        yield SystemCommand("Refresh now", "Fetch signals, health and history now", self.action_refresh)
        yield SystemCommand("Add a note", "Write a note into the incident timeline", self.action_note)
        yield SystemCommand("Revision template and diff", "The highlighted revision's pod template and its diff against the current one", self.action_revision)
        yield SystemCommand("Pods and logs", "Pods (ready, restarts, age) and the last 50 log lines of each", self.action_pods)
        yield SystemCommand("Freeze or resume writes", "Scale to 0 remembering the replica count, or back to it", self.action_writes)
        yield SystemCommand("Data corruption response", "Declare data corruption and run the runbook's six steps", self.action_corruption)
        if self._quick_rollback_offered(self.selected):
            yield SystemCommand("Quick rollback (keep previous running)",
                                "Docker Compose: scale the service to 0 and start the previous container",
                                self.action_quick_rollback)

    # Keys that act on the main screen: hidden from the footer and refused while a dialog is in front.
    _MAIN_SCREEN_ACTIONS = frozenset({
        "rollback", "investigate", "decide", "facts", "messages", "checklist", "export", "note", "filter",
        "cursor", "revision", "pods", "writes", "corruption", "quick_rollback", "trainer", "refresh",
        "change_theme", "roles", "toggle_lower", "autopilot_pause",
    })

    # What a viewer may still do: look around (filter, move, switch panes, theme, refresh).
    _VIEWER_ACTIONS = frozenset({"filter", "cursor", "toggle_lower", "change_theme", "refresh"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self._MAIN_SCREEN_ACTIONS and isinstance(self.screen, ModalScreen):
            return False
        if self.viewer and action in self._MAIN_SCREEN_ACTIONS and action not in self._VIEWER_ACTIONS:
            return False
        # The quick rollback is a Docker Compose procedure: not offered (nor run) elsewhere.
        if action == "quick_rollback":
            return self._quick_rollback_offered(self.selected)
        if action == "trainer":
            return self.session.drill_link is not None
        if action == "toggle_lower":
            # Only small screens hide a row; on large ones everything is in sight.
            return bool(self.screen_stack) and self.screen_stack[0].has_class("-compact")
        return True

    def push_screen(self, screen, callback=None, wait_for_dismiss: bool = False):
        """Every dialog gets its own footer: the keys of the screen in front, not the main screen's."""
        result = super().push_screen(screen, callback, wait_for_dismiss=wait_for_dismiss)
        if isinstance(screen, ModalScreen):
            self.call_after_refresh(self._give_footer, screen)
        return result

    def _give_footer(self, screen: ModalScreen) -> None:
        if screen.is_attached:
            # Narrow terminals: the dialog's buttons wrap onto a grid instead of running off the edge.
            screen.set_class(self.size.width < NARROW_COLUMNS, "-narrow")
        if screen.is_attached and not screen.query(Footer):
            screen.mount(Footer(compact=self.size.width < 120))
            self.call_after_refresh(screen.refresh_bindings)  # the footer lists what is bound once mounted

    def _quick_rollback_offered(self, service: str) -> bool:
        """The runbook's "Quick Rollback (Keep Previous Running)" exists for Compose services only."""
        return self.session.platform(service).platform == "compose"

    # -- the refresh loop --------------------------------------------------

    def request_refresh(self) -> None:
        """Refresh now, or right after the running refresh if one is running."""
        if any(w.group == "refresh" and w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self.workers):
            self._refresh_again = True
            return
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        self._refresh_again = False
        self._refresh_worker()

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def _refresh_worker(self) -> None:
        views = self.session.refresh_blocking()
        self.post_message(refreshed(self.session, views))

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False)
    def _first_refresh_worker(self, first: concurrent.futures.Future[list[ServiceView]]) -> None:
        """The first refresh, started with the refresh process, once it is done (see on_mount)."""
        views = first.result()
        self.post_message(refreshed(self.session, views))

    def _schedule_refresh(self) -> None:
        if self._refresh_again:
            self.request_refresh()
            return
        self._refresh_timer = self.set_timer(max(0.05, self.session.refresh_interval), self.request_refresh)

    async def on_event(self, event: textual_events.Event) -> None:
        if isinstance(event, (textual_events.Key, textual_events.MouseDown)):
            self._last_input = time.monotonic()
        await super().on_event(event)

    @on(Refreshed)
    def _refreshed(self, message: Refreshed) -> None:
        # After the frame in progress: a key already taken (the cursor moved) is
        # painted first, then the refresh, which repaints most of the screen.
        # Each refresh holds every service's views: when this thread falls behind
        # (a loaded machine), only the newest is applied and the older ones are
        # dropped unseen, rather than queued with all their views.
        pending = self._next_refresh is not None
        self._next_refresh = message
        if not pending:
            self.call_after_refresh(self._apply_next_refresh)

    def _apply_next_refresh(self) -> None:
        message, self._next_refresh = self._next_refresh, None
        if message is not None:
            self._apply_refresh(message, details_now=not self.views)

    def _apply_refresh(self, message: Refreshed, details_now: bool = False) -> None:
        """Show a refresh: the triage table in this frame, the title bar and the
        shown service's banner and panes in the next one (`details_now`: in this
        one too, for the first frame). A refresh of a few hundred services
        repaints most of the screen, and a key pressed meanwhile waits for the
        frame in progress: two shorter frames make it wait for less. One frame
        later is 17 ms, which nobody sees."""
        self._settle_heap()
        self._updated_at = self.session.clock.now()
        for view in message.views:
            self.views[view.snapshot.service] = view
            if view.decision.action == Action.HEALTHY:
                self._rolled_back.discard(view.snapshot.service)
        self.events = message.events
        self._pending = message.pending
        try:
            services = self.query_one(ServiceTable)
        except NoMatches:
            return  # a refresh that finished while the app shut down
        services.show(message.views, self._updated_at)
        self._note_source_errors(message.views)
        self._check_investigation()
        self._retry_unsent()
        self._follow_drill(message)
        if details_now:
            self._show_details()
        else:
            # A frame slot after the table's frame: a key that came in meanwhile is taken first.
            self.call_after_refresh(self.set_timer, 1 / MAX_FPS, self._show_details)

    def _show_details(self, since: float | None = None) -> None:
        """The banner and panes of the lead (or pinned) service, the timeline and
        the incident. They yield to the operator's keys: while keys come in
        (one in the last DETAILS_YIELD), the cursor's frames are painted alone
        and the panes wait, DETAILS_YIELD_MAX at most."""
        if not self.views:
            return
        now = time.monotonic()
        since = now if since is None else since
        if now - self._last_input < DETAILS_YIELD and now - since < DETAILS_YIELD_MAX:
            self.set_timer(DETAILS_YIELD, lambda: self._show_details(since))
            return
        try:
            # The title bar with the panes, not with the table: a frame repaints every
            # widget between the regions it updates, and the bar is the screen's top line.
            self._render_titlebar()
            self._follow_lead()
            self._show_selected()
            self.query_one(TimelinePane).show(self.events)
            self._show_incident()
        except NoMatches:
            return  # the app is shutting down
        # The panes' routing, lease and owner are asked for once the refresh is painted: the
        # refresh process reads them (without one, a worker thread on this interpreter, which
        # would compete for the GIL with that frame and a key).
        self.call_after_refresh(self._fetch_platform_extras)
        self.call_after_refresh(self._collect_between_frames)

    def _settle_heap(self) -> None:
        """Keep the garbage collector's full passes short and off the operator's keys.

        A full pass over everything the console holds (Textual, the modules,
        every widget and a few hundred services' views) stops this thread for
        60-150 ms. Once the first refresh is shown, that start-up heap is frozen
        out of the collector's passes (`gc.freeze`, no pass itself; a frozen
        object dropped later is still freed by its reference count). The
        collector's young passes (generations 0 and 1, a millisecond or two)
        go on as Python triggers them. Its oldest-generation passes, which
        would walk everything that came after start-up (the live views and
        the lines the widgets cache: 15 ms at 40 services, 20-30 ms at 500),
        Python would trigger at any moment, in the middle of a refresh's frame
        with a key waiting behind it; they are the console's to run instead
        (`_collect_between_frames`), each over what came since the last."""
        if not self._heap_frozen:
            gc.freeze()
            young, middle, _ = self._thresholds
            gc.set_threshold(young, middle, NEVER)
            self._heap_frozen = True

    def _collect_between_frames(self) -> None:
        """The oldest generation's pass, run after a refresh's last frame (the
        longest time before the next refresh), once every COLLECT_YOUNG_EVERY,
        not while keys come in (unless it is overdue four times over), over
        what came since the last one (its survivors are frozen). Once
        every COLLECT_EVERY, in a pause of the operator's (no key for
        COLLECT_WHEN_IDLE), the pass collects the start-up heap too and the
        heap is frozen again."""
        if not self._heap_frozen:
            return
        now = time.monotonic()
        if now - self._collected_at >= COLLECT_EVERY and now - self._last_input >= COLLECT_WHEN_IDLE:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            heap.give_back()  # what the pass freed, and the cycles' churn since (console.heap)
            self._collected_at = self._young_collected_at = now
            return
        due = now - self._young_collected_at
        if due >= COLLECT_YOUNG_EVERY and (now - self._last_input >= DETAILS_YIELD or due >= 4 * COLLECT_YOUNG_EVERY):
            gc.collect(2)  # frozen objects are not walked
            # What survived it is frozen too: the next pass walks only what came since. Most
            # survivors are painted lines the widgets cache (each Textual Strip holds seven
            # small caches: 24,000 of them at 40 services, 15 ms a pass, every pass); one that
            # becomes a garbage cycle later waits for the full pass above.
            gc.freeze()
            heap.give_back()
            self._young_collected_at = now

    # -- a drill: its story and its debrief ------------------------------------------

    def _follow_drill(self, message: Refreshed) -> None:
        """Show each drill note once as it is revealed; once the scenario's time
        is up and the signals have settled, show the debrief (once)."""
        link = self.session.drill_link
        if link is None:
            return
        for event in sorted((e for e in message.events if e.actor == "drill"), key=lambda e: e.at):
            if (event.at, event.text) not in self._drill_notes_shown:
                self._drill_notes_shown.add((event.at, event.text))
                self.notify(event.text.removeprefix("DRILL: "), title="DRILL", timeout=30)
        self._drill_verdicts = [*self._drill_verdicts[-2:], tuple(sorted(v.decision.action.value for v in message.views))]
        settled = len(self._drill_verdicts) == 3 and len(set(self._drill_verdicts)) == 1 and self.rolling_back is None
        if not self._debrief_shown and settled and link.debrief_due(self.session.clock.now()):
            self._debrief_shown = True
            self._debrief_worker()

    def action_trainer(self) -> None:
        """A trainer's command for the running drill: pause, resume, speed, note, fact, outage."""
        from .screens.note import NoteScreen

        def run(command: str | None) -> None:
            if command:
                self._trainer_worker(command)

        self.push_screen(NoteScreen(self.animate, title="Trainer command",
                                    placeholder="pause | resume | speed X | note TEXT | fact NAME=VALUE | outage SERVICE [recovered]"), run)

    @work(thread=True, group="trainer", exit_on_error=False)
    def _trainer_worker(self, command: str) -> None:
        try:
            done = self.session.drill_link.control(command)
        except ValueError as err:
            self.call_from_thread(self.notify, str(err), title="Trainer", severity="warning", timeout=10)
            return
        self.call_from_thread(self.notify, f"Trainer: {done}", title="Trainer", timeout=8)
        self.call_from_thread(self.request_refresh)

    @work(thread=True, group="debrief", exit_on_error=False)
    def _debrief_worker(self) -> None:
        link = self.session.drill_link
        result = link.debrief_now(self.session.store, self.session.clock.now())
        from .screens.debrief import DebriefScreen  # imported when first needed: not before the first frame

        self.call_from_thread(self.push_screen, DebriefScreen(f"{link.label}: debrief", result.lines()))

    def _show_selected(self) -> None:
        view = self.views.get(self.selected)
        if view is None:
            return
        now = self.session.clock.now()
        hint = ""
        if self.rolling_back is not None:
            hint = ""
        elif self.selected in self._rolled_back:
            hint = "Rolled back in this session: watch the signals recover before acting again"
        elif view.decision.action == Action.ROLLBACK_NOW and (record := self.session.cluster_rollback(self.selected)):
            # Another console, the autopilot or kubectl already rolled back: the metrics may not show it yet.
            when = f" at {clock_time(record.at)} UTC" if record.at else ""
            hint = (f"{record.by} rolled back to {', '.join(record.to_versions)}{when}: the signals may lag; "
                    "r asks the gate")
        elif view.decision.action == Action.ROLLBACK_NOW and self._on_rollback_target(view):
            # After a restart `_rolled_back` is empty: the incident still says where the rollback went.
            hint = "Already rolled back to this version: choose a revision in the history to go further"
        elif view.decision.action == Action.ROLLBACK_NOW:
            hint = "Press r to review the rollback plan" + _undo_target(view)
        if self.viewer and hint:
            # A read-only viewer (watch --viewer, web --follow) has no r: the driving console acts.
            hint = "Read-only view: the driving console rolls back" + _undo_target(view)
        with self.batch_update():
            self._show_lifecycle(view, now)
            self.query_one(DecisionBanner).show(view, now, hint, self._lead_reason())
            self.query_one(HealthPane).show(view, now)
            self.query_one(ErrorRatePane).show(view, now)
            self.query_one(LatencyPane).show(view, now)
            self.query_one(HistoryTable).show(view.snapshot.service, view.snapshot.history, now)
            errors = self.query_one("#source-errors", Static)
            set_content(errors, Content("\n").join(Content.styled(f"⚠ {e}", "$sev-warning") for e in view.snapshot.errors))
            errors.display = bool(view.snapshot.errors)

    def _show_lifecycle(self, view: ServiceView | None, now: datetime) -> None:
        """The rollback's phase in the banner and the writes-frozen strip at the top (from the incident)."""
        if view is None:
            return
        state = self.session.incident_state(view.snapshot.service)
        health = view.snapshot.health
        phase = incident.rollback_phase(state, now, health.ready, health.desired, self.thresholds.rollback_settle)
        if phase is None and self.rolling_back == view.snapshot.service:
            phase = incident.Phase("ROLLING BACK", self.last_progress or "starting…")
        frozen = state is not None and state.writes_frozen
        self.query_one(DecisionBanner).set_phase(phase, frozen)
        strip = self.query_one("#writes-frozen", Static)
        if frozen:
            set_content(strip, Content.styled(
                f"■ WRITES FROZEN · {view.snapshot.service} scaled to 0 (was {state.frozen_replicas} replicas)"
                " · w resumes writes", "bold"))
        strip.display = frozen

    def _on_rollback_target(self, view: ServiceView) -> bool:
        """The open incident's rollback completed and the service runs its target
        (from the incident and the last snapshot: no request)."""
        state = self.session.incident_state(view.snapshot.service)
        current = view.snapshot.current_revision
        if state is None or current is None or state.rollback.status is not RollbackStatus.COMPLETED:
            return False
        return bool(state.rollback.to_versions) and current.versions == state.rollback.to_versions

    def _note_source_errors(self, views: list[ServiceView]) -> None:
        """Notify each new source failure once; the pane keeps showing it while it lasts."""
        current = {e for v in views for e in v.snapshot.errors}
        for error in sorted(current - self._seen_errors):
            self.notify(error, title="Source failed", severity="warning", timeout=8)
        self._seen_errors = current

    def _tick(self) -> None:
        try:
            self._render_titlebar()
            if self.selected in self.views:
                now = self.session.clock.now()
                self._show_lifecycle(self.views[self.selected], now)
                self.query_one(DecisionBanner).tick(now)
            self._show_incident()
        except NoMatches:
            return  # the app is shutting down: the panes are gone
        self._check_investigation()
        self._remind_status_update()

    def _remind_status_update(self) -> None:
        """Once per due time: remind the operator to post the periodic status update."""
        minutes = getattr(getattr(getattr(self.session, "config", None), "incident", None), "status_update_minutes", None)
        every = timedelta(minutes=minutes) if minutes else None
        due = incident.status_update_due(self.session.incident_state(self.selected), self.session.clock.now(), every)
        if due is not None and due != self._status_reminded_at:
            self._status_reminded_at = due
            self.notify(f"A status update for {self.selected} is due: press m, then F4 to Status Update.",
                        title="Status update", severity="warning", timeout=20)

    # -- the guided incident ---------------------------------------------------

    def _show_incident(self) -> None:
        """Escalation, countdown and checklist of the selected service, from the session's incident state."""
        session, service = self.session, self.selected
        now = session.clock.now()
        state = session.incident_state(service)
        unsent = len(self._pending.get(service, ())) if state is not None else 0
        self.query_one(EscalationStrip).show(session.escalation(service, now), now, unsent)
        self._render_incident_header()
        self.query_one(InvestigationCountdown).show(session.investigation_deadline(service), now)
        rolled_back = state is not None and state.rollback.status is RollbackStatus.COMPLETED
        shown = rolled_back if self._checklist_shown is None else self._checklist_shown
        checklist = self.query_one(ChecklistPane)
        if shown:
            checklist.show(session.checklist(service, now), now, rolled_back)
        if checklist.display != shown:
            checklist.display = shown
            self.query_one(HistoryTable).display = not shown

    def _render_incident_header(self) -> None:
        """Time since impact began, who holds which role, who holds the rollback lease."""
        state = self.session.incident_state(self.selected)
        header = self.query_one("#incident-header", Static)
        holder = getattr(self, "lease_holder", None)
        if state is None and holder is None:
            header.display = False
            return
        now = self.session.clock.now()
        parts: list[Content] = []
        if state is not None:
            parts.append(Content.assemble(("INCIDENT ", "bold"), state.id))
            parts.append(impact_text(incident.customer_impact(state), now))
            for role, words in incident.ROLES.items():
                who = state.role(role)
                parts.append(Content.assemble((f"{words} ", "$sev-muted"),
                                              (who, "bold") if who else ("unset (o)", "$sev-warning")))
        if holder is not None:
            parts.append(Content.assemble(("lease ", "$sev-muted"), (str(getattr(holder, "holder", holder)), "bold")))
        # Unchanged (every tick, mostly): no repaint and no reflow of the screen.
        set_content(header, Content("  ·  ").join(parts))
        header.display = True

    def action_roles(self) -> None:
        """Set the incident roles (commander, comms, operations), stored for every console."""

        def save(text: str | None) -> None:
            if not text:
                return
            try:
                roles = incident.parse_roles(text)
            except ValueError as err:
                self.notify(str(err), title="Roles", severity="warning", timeout=10)
                return
            self._roles_worker(self.selected, roles)

        from .screens.note import NoteScreen

        self.push_screen(NoteScreen(self.animate, title="Incident roles",
                                    placeholder="ic=@alice comms=@bob ops=@carol (ops= clears)"), save)

    @work(thread=True, group="record", exit_on_error=False)
    def _roles_worker(self, service: str, roles: dict[str, str]) -> None:
        self.session.set_roles(service, roles)
        self.post_message(timeline_changed(self.session))

    def _check_investigation(self) -> None:
        """Ask for the decision when the investigation's time is up; stop the
        countdown at once when the signals call for a rollback."""
        if self.viewer:
            return  # the driver decides; a viewer's screen only follows
        service = self.selected
        deadline = self.session.investigation_deadline(service)
        if deadline is None:
            return
        from .screens.confirm import ConfirmRollbackScreen
        from .screens.decide import DecideScreen
        from .screens.facts import FactsScreen
        from .screens.note import NoteScreen

        view = self.views.get(service)
        if view is not None and view.decision.action == Action.ROLLBACK_NOW and not self.rolling_back:
            why = "; ".join(str(r) for r in view.decision.reasons[:2])
            self._end_investigation_worker(service, f"interrupted: ROLLBACK NOW ({why})")
            if isinstance(self.screen, DecideScreen):
                self.screen.dismiss(None)
            self.notify(f"Investigation interrupted: the runbook says ROLLBACK NOW ({why}). Press r.",
                        title="Worse signal", severity="error", timeout=20)
            return
        if isinstance(self.screen, DecideScreen):
            self.screen.show_view(view)
            return
        now = self.session.clock.now()
        if now >= deadline and self._asked_at != deadline and not isinstance(self.screen, (ConfirmRollbackScreen, FactsScreen, NoteScreen)) and not _composing(self.screen):
            self._asked_at = deadline
            self.push_screen(DecideScreen(view, now, expired=True), self._decided)

    @work(thread=True, group="record", exit_on_error=False)
    def _end_investigation_worker(self, service: str, why: str) -> None:
        self.session.end_investigation(service, why, actor="console")
        self.post_message(timeline_changed(self.session))

    def action_investigate(self) -> None:
        """Start the runbook's 5-minute investigation countdown."""
        view = self.views.get(self.selected)
        if view is not None and view.decision.action == Action.ROLLBACK_NOW:
            self.notify("The runbook says ROLLBACK NOW here: there is no time to investigate. Press r.",
                        severity="warning", timeout=8)
            return
        if self.session.investigation_deadline(self.selected) is not None:
            self.notify("The investigation is already running; d decides before the time is up.", timeout=5)
            return
        self._investigate_worker(self.selected)

    @work(thread=True, group="record", exit_on_error=False)
    def _investigate_worker(self, service: str) -> None:
        self.session.investigate(service)
        self.post_message(timeline_changed(self.session))

    def action_decide(self) -> None:
        """Decide now: roll back, keep investigating, fix forward, hotfix or wait (with a reason)."""
        from .screens.decide import DecideScreen

        now = self.session.clock.now()
        deadline = self.session.investigation_deadline(self.selected)
        self.push_screen(DecideScreen(self.views.get(self.selected), now, expired=bool(deadline and now >= deadline)),
                         self._decided)

    def _decided(self, result: tuple[str, str] | None) -> None:
        if result is None:
            return
        choice, reason = result
        self._choices[self.selected] = choice
        self._choose_worker(self.selected, choice, reason or "the runbook says so")
        if choice == "rollback":
            self.action_rollback()

    @work(thread=True, group="record", exit_on_error=False)
    def _choose_worker(self, service: str, choice: str, reason: str) -> None:
        self.session.choose(service, choice, reason)
        self.post_message(timeline_changed(self.session))

    def action_facts(self) -> None:
        """Declare what the console cannot observe (data corruption, migration, ...)."""
        service = self.selected

        def save(changes: dict | None) -> None:
            if changes:
                self._facts_worker(service, changes)

        from .screens.facts import FactsScreen

        self.push_screen(FactsScreen(self.session.facts(service), self.session.clock.now()), save)

    @work(thread=True, group="record", exit_on_error=False)
    def _facts_worker(self, service: str, changes: dict) -> None:
        for name, value in changes.items():
            self.session.declare(service, name, value)
        self.post_message(timeline_changed(self.session))
        # The decision follows the facts at once, not at the next refresh.
        self.call_from_thread(self.request_refresh)

    def action_messages(self) -> None:
        """Preview, edit and send the runbook's messages."""
        state = self.session.incident_state(self.selected)
        view = self.views.get(self.selected)
        choice = self._choices.get(self.selected)
        from .screens.message import MessageScreen  # imported when first needed: not before the first frame

        self.push_screen(MessageScreen(self.session, self.selected, message_for(state, view, choice)))

    def on_message_screen_sent(self, message: MessageScreen.Sent) -> None:
        # By its handler name: MessageScreen is imported only once a message is composed.
        if not message.ok:
            self.notify(f"{message.label} not sent: {message.error}", title="Slack", severity="error", timeout=15)
        self._timeline_worker()

    @work(thread=True, group="record", exit_on_error=False)
    def _timeline_worker(self) -> None:
        """Read the timeline and the unsent messages again (off the UI thread)."""
        self.post_message(timeline_changed(self.session))

    def _retry_unsent(self) -> None:
        """Resend kept messages now and then (never lost, never spammed)."""
        now = self.session.clock.now()
        if self.session.slack_problem():
            return
        if _composing(self.screen):
            return  # the operator is sending and resending by hand: no second sender behind their back
        due = [e for e in self._pending.get(self.selected, ())
               if e.last_attempt_at is None or (now - e.last_attempt_at).total_seconds() >= RESEND_EVERY_SECONDS]
        if due:
            self._resend_worker(self.selected)

    @work(thread=True, group="resend", exclusive=True, exit_on_error=False)
    def _resend_worker(self, service: str) -> None:
        results = self.session.resend_pending(service)
        if results:
            self.post_message(timeline_changed(self.session))

    def action_checklist(self) -> None:
        """Show or hide the post-rollback checklist (in place of the rollout history)."""
        checklist = self.query_one(ChecklistPane)
        main = self.screen_stack[0]
        compact_hidden = main.has_class("-compact") and not main.has_class("-show-lower")
        # On a compact screen the checklist's row is behind the signals: bring it up (as h does)
        # rather than focus a list nobody can see (Space would tick unseen items).
        self._checklist_shown = True if compact_hidden else not checklist.display
        if compact_hidden:
            main.add_class("-show-lower")
        self._show_incident()
        if self._checklist_shown:
            checklist.focus()

    @on(ChecklistPane.Toggled)
    def _toggle_item(self, message: ChecklistPane.Toggled) -> None:
        if not self.viewer:
            self._toggle_worker(self.selected, message.item_id)

    @work(thread=True, group="record", exit_on_error=False)
    def _toggle_worker(self, service: str, item_id: str) -> None:
        self.session.toggle_checklist(service, item_id)
        self.post_message(timeline_changed(self.session))

    def action_export(self) -> None:
        """Export the incident (Markdown and JSON) to the state dir, for the RCA and the ticket."""
        self._export_worker(self.selected)

    @work(thread=True, group="export", exit_on_error=False)
    def _export_worker(self, service: str) -> None:
        from console.export import export_incident, record_export

        state = self.session.incident_state(service)
        if state is None:
            self.post_message(OperationFailed("Exporting the incident", f"{service} has no open incident to export"))
            return
        link = self.session.drill_link
        # A drill's exports stay with its record, beside its incidents.
        exports = link.record.directory / "exports" if link is not None else locations.state_dir() / "exports"
        folder = locations.ensure_parent(exports / "x").parent
        now = self.session.clock.now()
        written = []
        for fmt in ("md", "json"):
            text = export_incident(self.session.store, state.id, fmt, now,
                                   checklist=self.session.checklist_for(service), thresholds=self.thresholds,
                                   drill=self.session.drill)
            path = folder / f"{state.id}.{fmt}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
        record_export(self.session.store, state.id, str(written[0]), now, actor=self.session.operator)
        self.session.reload_incident(service)
        self.post_message(timeline_changed(self.session))
        self.call_from_thread(self.notify, f"Exported to {written[0]} and .json", title="Export", timeout=10)

    def _render_titlebar(self) -> None:
        now = self.session.clock.now()
        parts = [Content.styled(self.title.upper(), "bold")]
        if self.viewer:
            parts.insert(0, Content.styled(" VIEWER · read-only ", "bold reverse $sev-info"))
        if self.sub_title:
            parts.append(Content(self.sub_title))
        if len(self.session.services) > 1 and self.views:
            urgent = self.query_one(ServiceTable).needing_action
            total = len(self.session.services)
            parts.append(Content.styled(f"▲ {urgent} of {total} services need action", "bold $sev-warning")
                         if urgent else Content.styled(f"✔ all {total} services healthy", "$sev-ok"))
        if self.session.operator:
            parts.append(Content.styled(f"operator {self.session.operator}", "$sev-muted"))
        set_content(self.query_one("#title-left", Static), Content("  ·  ").join(parts))
        set_content(self.query_one("#title-right", Static),
            Content.assemble(
                ("updated ", "$sev-muted"), clock_time(self._updated_at),
                ("  ·  now ", "$sev-muted"), (f"{clock_time(now)} UTC", "bold"),
            )
        )

    # -- triage: which service the banner leads with ----------------------------

    def _lead(self) -> str:
        """The pinned service, else the one being rolled back, else the most urgent."""
        table = self.query_one(ServiceTable)
        return table.pinned or self.rolling_back or table.most_urgent or self.selected

    def _follow_lead(self) -> None:
        """Point the banner and the panes at the lead service if it changed."""
        lead = self._lead()
        if lead != self.selected:
            offered = self._quick_rollback_offered(self.selected)
            self.selected = lead
            if self._quick_rollback_offered(self.selected) != offered:
                # The quick rollback follows the service's platform. Only then:
                # refreshing the bindings rebuilds the whole footer (most of a key's cost).
                self.refresh_bindings()
            self._show_selected()
            self._show_incident()
            self.query_one(TimelinePane).show(self.events)
            self._fetch_platform_extras()

    def _lead_reason(self) -> str:
        """Why the banner shows this service: "⚑ PINNED", or "most urgent" among several."""
        if len(self.session.services) < 2:
            return ""
        table = self.query_one(ServiceTable)
        if table.pinned == self.selected:
            return "⚑ PINNED (Enter on it unpins)"
        if self.rolling_back == self.selected:
            return "being rolled back"
        return "most urgent of " + str(len(self.session.services))

    @on(DataTable.RowSelected, "#services")
    def _pin_service(self, event: DataTable.RowSelected) -> None:
        """Enter on a row pins it (the banner stays on it); Enter on the pinned row unpins."""
        table = self.query_one(ServiceTable)
        name = event.row_key.value
        table.set_pinned(None if table.pinned == name else name)
        self._follow_lead()
        self._show_selected()
        self._render_titlebar()

    def action_cursor(self, direction: str) -> None:
        """j / k: move in the service table (and focus it)."""
        table = self.query_one(ServiceTable)
        if not self.query_one("#services-box").display:
            return
        table.focus()
        table.action_cursor_down() if direction == "down" else table.action_cursor_up()

    def action_filter(self) -> None:
        """/: filter the service table by name or decision."""
        box = self.query_one("#services-box")
        if not box.display:
            self.notify("One service is watched: there is nothing to filter.", timeout=4)
            return
        field = self.query_one("#service-filter", Input)
        field.display = True
        field.disabled = False
        field.focus()

    @on(Input.Changed, "#service-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_one(ServiceTable).set_filter(event.value)

    @on(Input.Submitted, "#service-filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        field = self.query_one("#service-filter", Input)
        field.display = bool(field.value)
        field.disabled = not field.value
        self.query_one(ServiceTable).focus()

    # -- workers' ends -----------------------------------------------------

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "refresh" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            self._schedule_refresh()
        if event.state != WorkerState.ERROR:
            return
        error = worker.error
        what = {
            "refresh": "Refreshing the signals failed",
            "plan": "Planning the rollback failed",
            "rollback": "The rollback stopped",
            "record": "Writing to the timeline failed",
            "export": "Exporting the incident failed",
            "message": "Sending the message failed",
            "resend": "Resending the kept messages failed",
        }.get(worker.group, "An operation failed")
        sentence = str(error) if isinstance(error, PlatformError) else f"{error.__class__.__name__}: {error}"
        advice = " The console retries on the next refresh." if worker.group == "refresh" else ""
        self.notify(f"{what}: {sentence}.{advice}".replace("..", "."), title="Error", severity="error", timeout=15)
        if worker.group == "rollback":
            self._rollback_ended()

    # -- rollback ------------------------------------------------------------

    def action_rollback(self) -> None:
        """Plan a rollback of the selected service to the previous revision."""
        self._plan(self.selected, None)

    def action_quick_rollback(self) -> None:
        """Docker Compose: plan the quick rollback (scale to 0, start the previous container)."""
        if self._quick_rollback_offered(self.selected):
            self._plan(self.selected, None, quick=True)

    @on(HistoryTable.RollbackToRequested)
    def _rollback_to(self, message: HistoryTable.RollbackToRequested) -> None:
        self._plan(self.selected, message.revision)

    def _plan(self, service: str, to_revision: int | None, quick: bool = False) -> None:
        if self.viewer:
            return  # a viewer changes nothing (Enter on a history row included)
        if self.rolling_back is not None:
            self.notify(f"A rollback of {self.rolling_back} is running; wait for it to finish.", severity="warning")
            return
        if to_revision is None and self.session.rollback_in_flight(service):
            self.notify(f"A rollback of {service} is already in flight; it is watched, not issued again.",
                        severity="warning")
            return
        self._plan_worker(service, to_revision, quick)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def _plan_worker(self, service: str, to_revision: int | None, quick: bool = False) -> None:
        try:
            plan = self.session.plan_rollback(service, to_revision, quick=quick)
            view = self.views.get(service)
            # Shown as it is sent: with the rollback record its request carries.
            plan = self.session.plan_as_sent(plan, "; ".join(str(r) for r in view.decision.reasons) if view else "")
            # The gate decides whether it may go ahead; the UI adds no rule of its own.
            self._gate_plan(plan, Ask(self.session.operator, to_revision, quick=quick))
        except PlatformError as err:
            self.post_message(OperationFailed(f"Planning the rollback of {service}", str(err)))

    @on(PlanReady)
    def _confirm_plan(self, message: PlanReady) -> None:
        plan = message.plan
        view = self.views.get(plan.service)
        reason = "; ".join(str(r) for r in view.decision.reasons) if view else ""

        def confirmed(ok: bool | None) -> None:
            if plan.skip_reason:
                # Nothing to change; running the plan records that it was skipped.
                self._rollback_worker(plan, reason)
            elif not ok:
                self.notify("Rollback cancelled: nothing was changed.", timeout=4)
            # Confirmed: started already (_start_confirmed), before the dialog closed.

        from .screens.confirm import ConfirmRollbackScreen

        self.push_screen(ConfirmRollbackScreen(plan, reason, on_confirm=self._start_confirmed), confirmed)

    def _start_confirmed(self, screen) -> None:
        """The operator confirmed: the rollback starts now; its dialog closes at its first progress."""
        plan = screen.plan
        self.rolling_back = plan.service
        self._sending = screen
        self.query_one(DecisionBanner).set_progress("starting…")
        self._rollback_worker(plan, screen.reason)
        if screen.announce:
            self._announce_worker(plan)

    def _sent(self) -> None:
        """Close the confirmation dialog of the rollback whose change left (or that ended)."""
        screen, self._sending = self._sending, None
        if screen is not None:
            screen.sent()

    @work(thread=True, group="message", exit_on_error=False)
    def _announce_worker(self, plan) -> None:
        """Post "Rollback in Progress" for a rollback just confirmed with `a`."""
        _, result = self.session.send_message(plan.service, MessageKind.ROLLBACK_IN_PROGRESS, plan=plan)
        if result.ok:
            self.call_from_thread(self.notify, "Rollback in Progress posted.", title="Slack", timeout=6)
        else:
            self.call_from_thread(self.notify, f"Rollback in Progress not sent: {result.error}", title="Slack",
                                  severity="error", timeout=15)
        self.post_message(timeline_changed(self.session))

    @work(thread=True, exclusive=True, group="rollback", exit_on_error=False)
    def _resume_worker(self, service: str) -> None:
        failure: str | None = None
        try:
            for progress in self.session.resume_rollback(service):
                self.post_message(RollbackProgress(progress))
                self.post_message(timeline_changed(self.session))
                if progress.failed:
                    failure = progress.message
        except PlatformError as err:
            self.post_message(timeline_changed(self.session))
            self.post_message(RollbackFinished(service, False, str(err)))
            return
        self.post_message(RollbackFinished(service, failure is None, failure))

    @work(thread=True, exclusive=True, group="rollback", exit_on_error=False)
    def _rollback_worker(self, plan, reason: str) -> None:
        failure: str | None = None
        try:
            for progress in self.session.execute(plan, reason=reason):
                self.post_message(RollbackProgress(progress))
                self.post_message(timeline_changed(self.session))
                if progress.failed:
                    failure = progress.message
        except PlatformError as err:
            self.post_message(timeline_changed(self.session))
            self.post_message(RollbackFinished(plan.service, False, str(err)))
            return
        self.post_message(RollbackFinished(plan.service, failure is None, failure, skipped=bool(plan.skip_reason)))

    @on(RollbackProgress)
    def _show_progress(self, message: RollbackProgress) -> None:
        self._sent()
        self.last_progress = message.progress.message
        if self.rolling_back is not None:
            self.query_one(DecisionBanner).set_progress(message.progress.message)

    @on(TimelineChanged)
    def _show_timeline(self, message: TimelineChanged) -> None:
        self.events = message.events
        self._pending = message.pending
        self.query_one(TimelinePane).show(message.events)
        self._show_incident()  # the unsent count on the escalation strip

    @on(RollbackFinished)
    def _rollback_finished(self, message: RollbackFinished) -> None:
        self._sent()
        if message.skipped:
            self.notify(f"Rollback of {message.service} skipped: {self.last_progress}", severity="warning", timeout=10)
        elif message.ok:
            self._rolled_back.add(message.service)
            self.notify(f"{message.service}: {self.last_progress}. Press m to send the Rollback Complete message; "
                        "the post-rollback checklist has started.", title="Rollback complete", timeout=15)
        else:
            self.notify(f"{message.service}: {message.error}", title="Rollback failed", severity="error", timeout=30)
        self._rollback_ended()

    def _rollback_ended(self) -> None:
        self.rolling_back = None
        self.query_one(DecisionBanner).set_progress(None)
        self.request_refresh()

    @on(OperationFailed)
    def _operation_failed(self, message: OperationFailed) -> None:
        self.notify(f"{message.what} failed: {message.error}", title="Error", severity="error", timeout=20)
        self._record(ERROR, f"{message.what} failed: {message.error}")

    # -- notes -------------------------------------------------------------

    def action_note(self) -> None:
        """Write a note into the timeline."""

        def write(text: str | None) -> None:
            if text:
                self._record(incident.NOTE, text)

        from .screens.note import NoteScreen

        self.push_screen(NoteScreen(animate=self.animate), write)

    def _record(self, kind: str, text: str) -> None:
        self._record_worker(kind, text)

    @work(thread=True, group="record", exit_on_error=False)
    def _record_worker(self, kind: str, text: str) -> None:
        self.session.record(incident.NewEvent(kind, text), service=self.selected)
        self.post_message(timeline_changed(self.session))

    # -- other keys ------------------------------------------------------

    def action_autopilot_pause(self) -> None:
        """The autopilot's kill switch: pause it for everyone (this incident store and the
        services' namespaces in the cluster), or resume it."""
        self._autopilot_pause_worker(self.selected)

    @work(thread=True, group="record", exit_on_error=False)
    def _autopilot_pause_worker(self, service: str) -> None:
        from console.autopilot.switch import toggle_pause, toggled_words

        toggled = toggle_pause(self.session, service)
        head = "AUTOPILOT PAUSED" if toggled.switch.paused else "Autopilot resumed"
        words = head + ":" + toggled_words(toggled).partition(":")[2]
        severity = "error" if toggled.problems else "warning" if toggled.switch.paused else "information"
        self.call_from_thread(self.notify, words, severity=severity, timeout=20 if toggled.problems else 8)
        self.post_message(timeline_changed(self.session))
        self.call_from_thread(self._fetch_platform_extras)  # the paused strip says it at once

    def action_refresh(self) -> None:
        """Refresh now."""
        self.request_refresh()

    def on_resize(self, event) -> None:
        self._fit_to_size(event.size.width, event.size.height)

    def _fit_to_size(self, width: int, height: int) -> None:
        """Compact layout on small terminals; a compact footer on narrow ones."""
        if not self.screen_stack:
            return
        main = self.screen_stack[0]
        compact = height < COMPACT_ROWS
        if main.has_class("-compact") != compact:
            main.set_class(compact, "-compact")
            self.refresh_bindings()
        # Narrow: the service table keeps its first columns (mark, service, decision) and scrolls sideways.
        main.set_class(width < NARROW_COLUMNS, "-narrow")
        for footer in main.query_children(Footer):  # not the whole tree: this runs after every refresh
            footer.compact = width < 120
        self._fit_signals(main, width)

    def _fit_signals(self, main: Screen, width: int) -> None:
        """Give the signals row its width (SIGNALS_WIDTH) before the service table takes
        half the screen, and place the selected service's routing pane (blue-green,
        canary) beside the signals where the screen has room for both, else below."""
        try:
            high, low = main.query_one("#routing", RoutingPane), main.query_one("#routing-lower", RoutingPane)
            box = main.query_one("#services-box")
        except NoMatches:
            return
        routing, error = self.routing, self.routing_error
        shown = routing is not None or error is not None
        routing_width = pane_width(routing)
        need = SIGNALS_WIDTH + (routing_width if shown else 0)
        table = SERVICES_NARROW
        if width >= NARROW_COLUMNS:
            table = max(SERVICES_NARROW, min(SERVICES_MAX, width // 2, width - 1 - need))
        box.styles.width = table
        beside_signals = width - (table + 1 if box.display else 0) >= need  # a single service has no table
        # The signals narrower than their width: plain figures, never large digits cut short.
        main.set_class(width - (table + 1 if box.display else 0) < SIGNALS_WIDTH, "-tight")
        for pane, here in ((high, shown and beside_signals), (low, shown and not beside_signals)):
            if here:
                pane.styles.width = routing_width
                pane.show(routing, error)
            else:
                pane.display = False

    def action_toggle_lower(self) -> None:
        """Small screens: switch between the signals and the history with the timeline."""
        main = self.screen_stack[0]
        main.toggle_class("-show-lower")
        showing = main.has_class("-show-lower")
        self.notify("History and timeline (h: back to the signals)" if showing else
                    "Signals (h: history and timeline)", timeout=3)

    def action_toggle_keys(self) -> None:
        """Show or hide the keys panel."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    async def action_quit(self) -> None:
        """Quit; while a rollback runs, ask first (it would go on unwatched)."""
        if self.rolling_back is None:
            self.exit()
            return

        def answer(quit_anyway: bool | None) -> None:
            if quit_anyway:
                self.exit()

        from .screens.confirm import ConfirmQuitScreen

        self.push_screen(ConfirmQuitScreen(self.rolling_back), answer)


def impact_text(impact: incident.Impact | None, now: datetime) -> Content:
    """The header's impact: a running clock while it lasts, how long it lasted once the
    signals are healthy again ("impact 14m (ended 14:32)"), "none seen" when there was none."""
    label = ("impact ", "$sev-muted")
    if impact is None:
        return Content.assemble(label, "none seen")
    if impact.ended_at is None:
        return Content.assemble(label, (elapsed(impact.since, now), "bold"))
    ended = impact.ended_at.astimezone(timezone.utc)
    return Content.assemble(label, (lasted(impact.duration(now)), "bold"), f" (ended {ended:%H:%M})")


def message_for(state, view: ServiceView | None, choice: str | None = None) -> MessageKind:
    """The message `m` offers first, from where the incident stands: the
    rollback's own messages around a rollback, else the one for the decision
    taken (fix forward, waiting on an external fix), else a status update."""
    status = state.rollback.status if state is not None else RollbackStatus.NONE
    if status is RollbackStatus.COMPLETED:
        return MessageKind.ROLLBACK_COMPLETE
    if status is RollbackStatus.IN_PROGRESS:
        return MessageKind.ROLLBACK_IN_PROGRESS
    if choice in ("fix_forward", "hotfix"):
        return MessageKind.FIX_FORWARD
    if choice == "wait":
        return MessageKind.WAITING_EXTERNAL
    action = view.decision.action if view is not None else None
    if action in (Action.FIX_FORWARD, Action.HOTFIX):
        return MessageKind.FIX_FORWARD
    if action is Action.WAIT_EXTERNAL:
        return MessageKind.WAITING_EXTERNAL
    if action is Action.ROLLBACK_NOW:
        return MessageKind.ROLLBACK_IN_PROGRESS
    return MessageKind.STATUS_UPDATE


def _composing(screen: Screen) -> bool:
    """Whether `screen` is the message composer (never, before its module was first imported)."""
    module = sys.modules.get("console.ui.screens.message")
    return module is not None and isinstance(screen, module.MessageScreen)


def _undo_target(view: ServiceView) -> str:
    """" (revision 3 → 2)": where `kubectl rollout undo` would go, from the history."""
    current = view.snapshot.current_revision
    if current is None:
        return ""
    if current.colour is not None:
        # Blue-green: each colour numbers its own revisions; the rollback goes to the other colour.
        others = [r for r in view.snapshot.history if not r.current and r.colour is not None]
        return f" ({current.label} → {others[0].label})" if len(others) == 1 else ""
    older = [r for r in view.snapshot.history if r.number < current.number]
    # A platform that picks the target by evidence (Compose) marks it.
    picked = next((r for r in view.snapshot.history if r.rollback_target), None)
    if picked is None and not older:
        return ""
    previous = picked or max(older, key=lambda r: r.number)
    return f" (revision {current.number} → {previous.number})"


def build_app(
    session: Session,
    *,
    theme: str | None = None,
    animate: bool = True,
    user_themes_dir: Path | None = None,
    keymap: dict[str, str] | None = None,
    viewer: bool = False,
) -> RollbackConsoleApp:
    """The console app for `session` (the CLI and the tests build it here).

    `theme` names a theme from themes/ or the user themes dir (default:
    $XDG_CONFIG_HOME/rollback-console/themes); `animate=False` turns off
    animations and cursor blink (snapshots); `keymap` maps binding ids to keys;
    `viewer` makes a read-only console (every action key disabled, a VIEWER mark).
    """
    timers.install()  # a frame after one that overran its slot waits one slot, not two
    return RollbackConsoleApp(
        session, theme=theme, animate=animate, user_themes_dir=user_themes_dir, keymap=keymap, viewer=viewer
    )
