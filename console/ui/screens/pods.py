"""Pods and logs: the runbook's step 4 (`kubectl get pods -l app=SERVICE`,
`kubectl logs -l app=SERVICE --tail=50`) beside the rollout status and the
health endpoint (step 5), for checking a rollback after it ran."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Log, Static

from console.platforms.base import PlatformError, PodInfo, PodLogs, WithPods, lacks

from ..panes.format import NO_VALUE

LOG_TAIL = 50
"""Lines of each pod's log shown, as the runbook's `kubectl logs --tail=50`."""

COLUMNS = (("name", "Pod"), ("ready", "Ready"), ("status", "Status"), ("restarts", "Restarts"), ("age", "Age"),
           ("image", "Image"))


def _age(pod: PodInfo) -> str:
    if pod.age is None:
        return NO_VALUE
    seconds = int(pod.age.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 600 else f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class PodsScreen(ModalScreen[None]):
    """The selected service's pods (ready, restarts, age), the last 50 log lines
    of the highlighted pod on Enter, the rollout status and the health endpoint."""

    BINDINGS = [
        Binding("f5,ctrl+r", "reload", "Reload pods", id="pods.reload"),
        Binding("l", "logs", "Logs of this pod", id="pods.logs"),
        Binding("escape,q", "close", "Close", id="pods.close"),
    ]

    class PodsRead(Message):
        def __init__(self, pods: tuple[PodInfo, ...] | None, error: str | None = None) -> None:
            super().__init__()
            self.pods = pods
            self.error = error

    class LogsRead(Message):
        def __init__(self, pod: str, logs: PodLogs | None, error: str | None = None) -> None:
            super().__init__()
            self.pod = pod
            self.logs = logs
            self.error = error

    def __init__(self, session, service: str) -> None:
        super().__init__()
        self.session = session
        self.service = service
        self.pods: tuple[PodInfo, ...] = ()
        self.logs_of: str | None = None
        self.log_lines: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-pods"):
            yield Static(Content.styled(f"{self.service}: pods and logs", "bold"), classes="dialog-title")
            yield Static("", id="pods-status", markup=False)
            table = DataTable(id="pods-table", cursor_type="row", zebra_stripes=False)
            table.border_title = "Pods (step 4)"
            yield table
            log = Log(id="pod-log", highlight=False, max_lines=LOG_TAIL * 4)
            log.border_title = f"Logs: Enter on a pod shows its last {LOG_TAIL} lines"
            yield log
            with Horizontal(classes="hints"):
                yield Static(Content.styled("Enter / l logs · F5 reload · Esc close", "$sev-muted"), markup=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        self._show_status()
        self.action_reload()
        # Live while open, like `kubectl get pods -w`; logs stay on demand.
        self.set_interval(max(1.0, float(self.session.refresh_interval)), self._tick)

    def _tick(self) -> None:
        self._show_status()
        self._read_pods()

    def _show_status(self) -> None:
        """The rollout status (from the running rollback or the last refresh) and the health endpoint."""
        app = self.app
        lines: list[Content] = []
        rolling = app.rolling_back == self.service
        progress = app.last_progress
        if rolling and progress:
            lines.append(Content.assemble(("Rollout  ", "$sev-muted"), (progress, "bold")))
        view = app.views.get(self.service)
        if view is not None:
            health = view.snapshot.health
            if not rolling:
                counts = f"{health.ready if health.ready is not None else '?'} of " \
                         f"{health.desired if health.desired is not None else '?'} ready, " \
                         f"{health.updated if health.updated is not None else '?'} updated"
                lines.append(Content.assemble(("Rollout  ", "$sev-muted"), counts))
            if health.endpoint_ok is None:
                lines.append(Content.assemble(("Health   ", "$sev-muted"), ("endpoint not configured", "$sev-muted")))
            else:
                status = health.endpoint_status or ("healthy" if health.endpoint_ok else "unhealthy")
                style = "bold $sev-ok" if health.endpoint_ok else "bold $sev-critical"
                checked = f"  (checked {health.checked_at:%H:%M:%S} UTC)" if health.checked_at else ""
                lines.append(Content.assemble(("Health   ", "$sev-muted"), (f"● {status}", style), checked,
                                              ("  step 5", "$sev-muted")))
        self.query_one("#pods-status", Static).update(Content("\n").join(lines))

    def action_reload(self) -> None:
        """Read the pods again."""
        self._read_pods()

    @work(thread=True, exclusive=True, group="pods", exit_on_error=False)
    def _read_pods(self) -> None:
        try:
            platform = self.session.platform(self.service)
            if not isinstance(platform, WithPods):
                self.post_message(self.PodsRead(None, lacks(platform, WithPods)))
                return
            self.post_message(self.PodsRead(tuple(platform.pods())))
        except PlatformError as err:
            self.post_message(self.PodsRead(None, str(err)))

    def on_pods_screen_pods_read(self, message: PodsRead) -> None:
        table = self.query_one(DataTable)
        if message.error:
            table.border_subtitle = message.error
            self.notify(message.error, title="Pods", severity="warning", timeout=8)
            return
        self.pods = message.pods or ()
        highlighted = self._highlighted()
        table.clear()
        for pod in self.pods:
            # Rich Text: DataTable cells do not resolve theme variables; weight and a mark survive every theme.
            table.add_row(
                Text(pod.name),
                Text(pod.ready_containers if pod.ready else f"{pod.ready_containers} ⚠", "" if pod.ready else "bold"),
                Text(pod.status, "" if pod.status == "Running" else "bold"),
                Text(str(pod.restarts), "bold" if pod.restarts else "", justify="right"),
                Text(_age(pod)),
                Text(", ".join(i.rsplit("/", 1)[-1] for i in pod.images)),
                key=pod.name,
            )
        if highlighted in {p.name for p in self.pods}:
            table.move_cursor(row=table.get_row_index(highlighted), animate=False)
        ready = sum(1 for p in self.pods if p.ready)
        table.border_subtitle = f"{ready} of {len(self.pods)} ready"

    def _highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @on(DataTable.RowSelected, "#pods-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self._show_logs(event.row_key.value)

    def action_logs(self) -> None:
        """The last 50 log lines of the highlighted pod."""
        pod = self._highlighted()
        if pod:
            self._show_logs(pod)

    def _show_logs(self, pod: str) -> None:
        log = self.query_one(Log)
        log.border_title = f"Logs of {pod} (last {LOG_TAIL} lines)"
        log.clear()
        log.write_line(f"reading the log of {pod}…")
        self._read_logs(pod)

    @work(thread=True, exclusive=True, group="pod-logs", exit_on_error=False)
    def _read_logs(self, pod: str) -> None:
        try:
            platform = self.session.platform(self.service)
            if not isinstance(platform, WithPods):
                self.post_message(self.LogsRead(pod, None, lacks(platform, WithPods)))
                return
            found = next((entry for entry in platform.logs(tail=LOG_TAIL) if entry.pod == pod), None)
        except PlatformError as err:
            self.post_message(self.LogsRead(pod, None, str(err)))
            return
        if found is None:
            self.post_message(self.LogsRead(pod, None, f"No log was returned for {pod} (it may be gone, or beyond "
                                                       "the pods kubectl logs reads at once)."))
            return
        self.post_message(self.LogsRead(pod, found))

    def on_pods_screen_logs_read(self, message: LogsRead) -> None:
        log = self.query_one(Log)
        log.clear()
        self.logs_of = message.pod
        if message.error or (message.logs and message.logs.error):
            error = message.error or message.logs.error  # type: ignore[union-attr]
            self.log_lines = ()
            log.write_line(error or "")
            return
        self.log_lines = message.logs.lines if message.logs else ()
        if not self.log_lines:
            log.write_line("(the log is empty)")
            return
        log.write_lines(self.log_lines[-LOG_TAIL:])

    def action_close(self) -> None:
        """Back to the console."""
        self.dismiss(None)
