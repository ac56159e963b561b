"""The autopilot: Alertmanager's alert -> its own limits -> the gate -> the
headless rollback procedure (`console.rollback.rollback_procedure`, the one
`rollback-console rollback` runs), on a session whose operator is `autopilot`.

The HTTP receiver (`receiver.py`) only authenticates, parses and calls
`accept()`, which claims each new alert in the journal (idempotency) and
queues it; one worker thread handles the queue, one alert after the other.
Everything it does is recorded in the incident timeline before it is done,
and every outcome is announced: the runbook's two messages for a rollback
(posted by the procedure itself), an Autopilot notice with the escalation
level for a refusal.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from console import incident as incidents
from console.autopilot.journal import Journal
from console.autopilot.switch import cluster_pause
from console.autopilot.payload import Alert, Notification, parse_time
from console.autopilot.policy import AutopilotPolicy, PastRollback, Reason, Refusal, after_gate, before_gate
from console.comms import autopilot_notice
from console.config import Config, ServiceConfig
from console.exitcodes import EXIT_DO_NOT_ROLL_BACK, EXIT_OK
from console.platforms.base import PlatformError
from console.rollback import rollback_procedure
from console.session import Session


class Counters:
    """The /metrics counters (Prometheus exposition format)."""

    NAMES = {
        "alerts_received": "Alerts received from Alertmanager (every alert of every notification).",
        "alerts_duplicate": "Alerts received again (same fingerprint and startsAt): nothing started.",
        "alerts_ignored": "Alerts not for the autopilot (no auto-rollback label, or no configured service).",
        "rollbacks_started": "Automatic rollbacks started.",
        "rollbacks_completed": "Automatic rollbacks completed with the service healthy.",
        "rollbacks_failed": "Automatic rollbacks that failed or left the service unhealthy.",
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.NAMES, 0)
        self._refused: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def refused(self, reason: Reason) -> None:
        with self._lock:
            self._refused[reason.value] = self._refused.get(reason.value, 0) + 1

    def value(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def render(self, leader: bool) -> str:
        with self._lock:
            lines = []
            for name, text in self.NAMES.items():
                metric = f"rollback_console_autopilot_{name}_total"
                lines += [f"# HELP {metric} {text}", f"# TYPE {metric} counter", f"{metric} {self._values[name]}"]
            metric = "rollback_console_autopilot_rollbacks_refused_total"
            lines += [f"# HELP {metric} Rollbacks the autopilot did not start, by reason.", f"# TYPE {metric} counter"]
            for reason in Reason:
                lines.append(f'{metric}{{reason="{reason.value}"}} {self._refused.get(reason.value, 0)}')
            lines += ["# HELP rollback_console_autopilot_leader 1 when this autopilot holds the lease and acts.",
                      "# TYPE rollback_console_autopilot_leader gauge", f"rollback_console_autopilot_leader {int(leader)}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Accepted:
    """What `accept` did with one notification (the receiver's 200 answer)."""

    queued: int = 0
    duplicates: int = 0
    ignored: int = 0
    resolved: int = 0


@dataclass(frozen=True)
class _Work:
    fingerprint: str
    starts_at: str
    alertname: str
    service: str
    summary: str = ""
    resumed: bool = False
    resolved: bool = False


class Autopilot:
    """Alerts in, rollbacks (or announced refusals) out. `is_leader` says
    whether this one acts (see `leader.Leadership`; always, without one)."""

    def __init__(self, config: Config, session: Session, journal: Journal, *, shadow: bool = False,
                 is_leader: Callable[[], bool] = lambda: True, out: Callable[[str], None] = print) -> None:
        settings = config.autopilot
        if settings is None:
            raise ValueError("the config has no autopilot: section")
        self.config = config
        self.settings = settings
        self.session = session
        self.journal = journal
        self.shadow = shadow
        self.is_leader = is_leader
        self.out = out
        self.policy = AutopilotPolicy(settings.cooldown(), settings.window(), settings.max_rollbacks)
        self.counters = Counters()
        self._queue: queue.Queue[_Work | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    # -- from the receiver's threads ------------------------------------------

    def service_for(self, alert: Alert) -> ServiceConfig | None:
        """The configured service the alert names (its service label, and its
        namespace label where several services match), None when none does."""
        name = alert.label(self.settings.service_label)
        if not name:
            return None
        matches = [s for s in self.config.services
                   if name in (s.name, getattr(s, "deployment", None))]
        if len(matches) > 1:
            namespace = alert.label(self.settings.namespace_label)
            matches = [s for s in matches if getattr(s, "namespace", None) == namespace]
        return matches[0] if len(matches) == 1 else None

    def accept(self, notification: Notification) -> Accepted:
        """Claim each new alert in the journal and queue it; a re-sent one is a duplicate."""
        now = self.session.clock.now()
        queued = duplicates = ignored = resolved = 0
        for alert in notification.alerts:
            self.counters.add("alerts_received")
            service = self.service_for(alert)
            fingerprint, starts_at = alert.key
            if service is None or alert.label(self.settings.label) != self.settings.label_value:
                ignored += 1
                self.counters.add("alerts_ignored")
                continue
            if not alert.firing:
                if self.journal.resolve(fingerprint, starts_at, alert.name, service.name, now):
                    resolved += 1
                    self._queue.put(_Work(fingerprint, starts_at, alert.name, service.name, resolved=True))
                continue
            if self.journal.claim(fingerprint, starts_at, alert.name, service.name, now):
                queued += 1
                summary = dict(alert.annotations).get("summary", "")
                self._queue.put(_Work(fingerprint, starts_at, alert.name, service.name, summary))
            else:
                duplicates += 1
                self.counters.add("alerts_duplicate")
        return Accepted(queued, duplicates, ignored, resolved)

    # -- the worker -----------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        self._worker = threading.Thread(target=self._work, name="autopilot", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout=30)

    def resume(self) -> None:
        """Queue what an earlier run claimed and never finished (it was killed,
        or lost the lease): the procedure resumes an in-flight rollback from
        the store and the cluster's record, never issuing it twice."""
        for item in self.journal.pending():
            self._queue.put(_Work(item.fingerprint, item.starts_at, item.alertname, item.service, resumed=True))

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            try:
                self.handle(work)
            except Exception as err:  # never let one alert stop the autopilot; say what happened
                self.out(f"autopilot: {work.alertname} for {work.service} stopped with an error: {err!r}")
                try:
                    self.session.note(f"AUTOPILOT: stopped on {work.alertname} with an error: {err}",
                                      service=work.service)
                except Exception:
                    pass

    def handle(self, work: _Work) -> None:
        if work.resolved:
            if self.session.store.open_incident_for(work.service) is None:
                return  # nothing to close: no incident was opened for it
            self.session.note(f"AUTOPILOT: {work.alertname} resolved for {work.service} "
                              f"(firing since {work.starts_at[11:19]} UTC)", service=work.service)
            return
        if not self.is_leader():
            return  # stays pending: resumed when this autopilot leads again
        if self.journal.outcome(work.fingerprint, work.starts_at) is not None:
            return  # finished already (queued twice: a resume and a claim)
        outcome = self._act(work)
        self.journal.finish(work.fingerprint, work.starts_at, outcome, self.session.clock.now())
        self.out(f"autopilot: {work.alertname} for {work.service}: {outcome}")

    def paused(self, service: str) -> str | None:
        """Why the kill switch is on for `service` (None when it is off): the
        config, the pause file, the store, or the Lease in the service's
        namespace (console.autopilot.switch), which every autopilot reads
        whatever its store."""
        if self.settings.paused:
            return "autopilot.paused is set in the config"
        if self.settings.pause_file and os.path.exists(self.settings.pause_file):
            return f"the file {self.settings.pause_file} exists"
        switch = self.journal.switch()
        if switch is not None and switch.paused:
            return f"paused by {switch.by} at {switch.at:%H:%M:%S} UTC: {switch.reason}"
        return cluster_pause(self.session, service)

    def _act(self, work: _Work) -> str:
        service, session = work.service, self.session
        mode = " (shadow: nothing will be changed)" if self.shadow else ""
        if work.resumed:
            session.note(f"AUTOPILOT: resuming {work.alertname} for {service}, received before the autopilot "
                         f"stopped{mode}", service=service)
        else:
            session.note(f"AUTOPILOT: {work.alertname} firing for {service}"
                         + (f": {work.summary}" if work.summary else "") + mode, service=service)
        if work.resumed and not self.shadow and session.rollback_in_flight(service):
            self._abandon_unsent(work)
        now = session.clock.now()
        if not session.rollback_in_flight(service):
            past = self.journal.past_rollbacks(besides=(work.fingerprint, work.starts_at)) + self._recorded(service)
            refusal = before_gate(service, now, past, self.policy, self.paused(service),
                                  parse_time(work.starts_at, "startsAt"))
            if refusal is not None:
                return self._refuse(service, refusal)
        seen: dict[str, object] = {}

        def vet(plan, verdict, decision) -> str | None:
            refusal = after_gate(service, decision, verdict)
            seen["refusal"], seen["plan"] = refusal, plan
            if refusal is None and not self.shadow:
                # Recorded before the change is sent: a crash after it still counts for the cooldown.
                self.journal.rolled_back(service, work.fingerprint, work.starts_at, session.clock.now())
                self.counters.add("rollbacks_started")
            return refusal.sentence if refusal is not None else None

        lines: list[str] = []
        reason = f"autopilot: {work.alertname}" + (f" ({work.summary})" if work.summary else "")
        def out(line: str) -> None:
            lines.append(line)
            self.out(f"autopilot: {service}: {line}")  # the procedure's own lines, in the autopilot's log

        code = session.run(rollback_procedure(session, service, reason=reason, dry_run=self.shadow, out=out, vet=vet))
        refusal = seen.get("refusal")
        if isinstance(refusal, Refusal):
            return self._refuse(service, refusal)
        if self.shadow and "plan" in seen:
            plan = seen["plan"]
            words = (f"Autopilot (shadow) would roll back {service} from {', '.join(plan.from_versions)} to "
                     f"{', '.join(plan.to_versions)}: the gate says go and the console says ROLLBACK NOW. "
                     "Nothing was changed.")
            session.note(f"AUTOPILOT: {words}", service=service)
            self._post(service, words)
            return "shadow: would roll back"
        if code == EXIT_OK:
            self.counters.add("rollbacks_completed")
            return "rolled back"
        if code == EXIT_DO_NOT_ROLL_BACK:
            return self._refuse(service, Refusal(Reason.GATE, lines[-1] if lines else "the gate refused."))
        last = next((line for line in reversed(lines) if line.strip()), "the rollback failed.")
        if "plan" not in seen and not work.resumed:
            # Stopped before the gate: the plan or the records could not be read; nothing was changed.
            return self._refuse(service, Refusal(Reason.GATE, f"the rollback could not be planned: {last}"))
        self.counters.add("rollbacks_failed")
        return self._refuse(service, Refusal(Reason.FAILED, f"the rollback did not end healthy: {last}"))

    def _abandon_unsent(self, work: _Work) -> None:
        """The killed autopilot recorded the rollback and never sent it: ended as
        failed, and no longer counted as a rollback done (the cooldown would say
        the service "was rolled back automatically"); the alert then goes through
        every rule and the gate again, as a new one would."""
        try:
            unsent = self.session.abandon_unsent_rollback(work.service)
        except PlatformError:
            return  # the procedure reads the platform again, and says why it cannot
        if unsent is not None:
            self.journal.withdraw(work.fingerprint, work.starts_at)
            self.session.note(f"AUTOPILOT: {unsent}: the rollback is asked for again", service=work.service)

    def _recorded(self, service: str) -> list[PastRollback]:
        """This autopilot's rollbacks of `service` as the cluster records them on
        the objects: another replica's, with another store, count for the cooldown too."""
        try:
            provenance = self.session.provenance(service)
        except PlatformError:
            return []  # the gate reads the records again, and refuses when it cannot
        return [PastRollback(service, r.at) for r in provenance.records
                if r.by == self.session.operator and r.at is not None]

    def _refuse(self, service: str, refusal: Refusal) -> str:
        """Record and announce why the autopilot did not roll back, escalating to the level it implies."""
        self.counters.refused(refusal.reason)
        session = self.session
        if refusal.reason in (Reason.JOINED, Reason.NOTHING):
            session.note(f"AUTOPILOT: not rolling back {service}: {refusal.sentence}", service=service)
            return refusal.reason.value
        level = refusal.level
        contacts = self.config.escalation.contacts.get(level, [])
        lead = (f"Autopilot's rollback of {service} failed" if refusal.reason is Reason.FAILED
                else f"Autopilot did not roll back {service}")
        words = (f"{lead}: {refusal.sentence} Escalating to Level {level} ({incidents.ESCALATION_ROLES[level]})"
                 + (f": {', '.join(contacts)}." if contacts else "."))
        session.note(f"AUTOPILOT: {words}", service=service)
        state = session.incident_state(service)
        if state is None or state.escalated_to < level:
            session.record(incidents.escalated(level, f"autopilot: {refusal.reason.value}"), service=service)
        self._post(service, words)
        return f"refused: {refusal.reason.value}"

    def _post(self, service: str, words: str) -> None:
        """Post an Autopilot notice (kept in the outbox first; a failure is recorded and resent later)."""
        url = self.config.slack.webhook_url()
        if url is None:
            return
        from console.slack import SlackNotifier, deliver

        slack = self.config.slack
        notifier = SlackNotifier(url, timeout=slack.timeout, retries=slack.retries)
        session = self.session
        deliver(session.store, notifier, session.incident_id(service), autopilot_notice(words), session.clock,
                actor=session.operator)
        session.reload_incident(service)

