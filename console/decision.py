"""The runbook's decision framework: its three tables as data, and `evaluate()`.

Pure: no I/O, the time comes in as a parameter. The numbers live in
`Thresholds` (the runbook's defaults; the config overrides them) and nowhere
else.

Every row of the three tables is a `Row` in `ROWS`: it fires when its
predicate holds, and every row that fired is reported as a `Reason`. Rows
can call for conflicting actions (8 % errors while an irreversible migration
is applied); the runbook does not say which wins, so this module does, in this
order (the first rule that applies decides):

1. Data corruption detected -> ROLLBACK NOW + freeze writes. Beats
   everything, an applied migration too: the data-corruption procedure
   (stop writes, assess, restore or fix, verify) takes care of the database.
2. Security vulnerability active -> ROLLBACK NOW. With a migration applied
   that is not known reversible, the alternatives say to roll back to a
   version that works with the new schema (a partial rollback).
3. Database migration applied and not known reversible
   (`Facts.migration_reversible` is not True) -> FIX FORWARD, even at 8 %
   errors or with the service down: rollback could cause data loss. A
   reversible migration does not block: the next rules apply and the
   migration's reason says to roll back the application first, then the
   migration.
4. External service issue -> WAIT FOR EXTERNAL FIX: rolling back our deploy
   cannot fix a dependency. The signal rows that fired still appear in the
   reasons.
5. Service completely down or error rate > 5 % -> ROLLBACK NOW. A minor bug
   with a workaround does not override this (a bug failing more than 5 % of
   requests is not minor); the hotfix is listed as an alternative.
6. Error rate 1-5 %, latency spike, single endpoint failing, intermittent
   errors -> INVESTIGATE FIRST, with a deadline: the investigation's start
   (`Facts.investigation_started_at`) or now, plus the investigation window.
7. Minor bug, workaround exists -> HOTFIX.
8. Otherwise HEALTHY.

Unknown is its own state: when a signal the decision needs is missing or
stale (`Snapshot.unavailable`, filled by the poller, which knows what is
configured; or `Snapshot.stale`: the metrics are old or a query failed), the
decision is SIGNALS UNAVAILABLE, saying what is missing and since when,
never HEALTHY, INVESTIGATE or HOTFIX on numbers it cannot see. What is known
still counts: the facts (rules 1-4) decide as before, and a service seen down
(pods or the health endpoint, read fresh) is rolled back (rule 5); but a
health endpoint that does not answer while the pods cannot be read is not seen
down (`Health.completely_down`: it may be the console's own network). An error
rate above 5 % that is stale does not roll back: it is listed as the last
known value under SIGNALS UNAVAILABLE. Missing metrics (None) never fire a
row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from console.model import Action, Decision, Facts, Missing, Reason, ServiceView, Snapshot, Table


@dataclass(frozen=True)
class Thresholds:
    """The runbook's numbers. The defaults are the runbook's; the config file
    overrides them field by field (the field names are the config keys)."""

    rollback_error_rate: float = 0.05
    """Error rate (fraction, 0.05 is 5 %) above which the runbook says
    "Rollback now". Strictly greater: exactly 5 % is investigated, not rolled back."""

    investigate_error_rate: float = 0.01
    """Error rate (fraction) from which the runbook says "Investigate first"
    (1 % <= rate <= 5 %). Below it, the error rate alone triggers nothing."""

    investigate_window: timedelta = timedelta(minutes=5)
    """How long the runbook allows for investigating before deciding
    ("Investigate 5 min, then decide")."""

    latency_spike_factor: float = 2.0
    """p95 latency at least this many times the p95 before the deploy counts as
    a latency spike. Sources computing `Signals.latency_spike` use this too."""

    customer_impact_escalation: timedelta = timedelta(minutes=30)
    """Customer impact lasting longer than this escalates to management
    (the runbook's Level 4: "Customer-impacting > 30 min")."""

    rollback_settle: timedelta = timedelta(minutes=2)
    """After a completed rollback, how long the signals' windows still hold the
    bad version's requests: until then the banner says ROLLED BACK (watching)
    instead of the signals' verdict."""

    def __post_init__(self) -> None:
        if not 0 <= self.investigate_error_rate <= self.rollback_error_rate <= 1:
            raise ValueError(
                "The error-rate thresholds must satisfy 0 <= investigate_error_rate "
                f"<= rollback_error_rate <= 1, got {self.investigate_error_rate} and "
                f"{self.rollback_error_rate}: fix them in the config file."
            )
        if self.investigate_window <= timedelta(0):
            raise ValueError("investigate_window must be longer than zero: fix it in the config file.")
        if self.latency_spike_factor <= 1:
            raise ValueError("latency_spike_factor must be greater than 1: fix it in the config file.")
        if self.customer_impact_escalation <= timedelta(0):
            raise ValueError("customer_impact_escalation must be longer than zero: fix it in the config file.")


Predicate = Callable[[Snapshot, Facts, Thresholds], bool]
Detail = Callable[[Snapshot, Facts, Thresholds], str]


@dataclass(frozen=True)
class Row:
    """One row of one of the runbook's decision tables."""

    table: Table
    condition: str  # the runbook's words, e.g. "Error rate > 5%"
    action: str  # the runbook's words, e.g. "Rollback now + freeze writes"
    fires: Predicate
    detail: Detail
    # True when the operator's facts drive the row, False when signals do
    # (only signal-driven rows are distrusted when the data is stale).
    from_facts: bool = False

    def reason(self, snapshot: Snapshot, facts: Facts, thresholds: Thresholds) -> Reason:
        """The `Reason` this row gives when it fired."""
        return Reason(self.table, self.condition, self.detail(snapshot, facts, thresholds))


def percent(fraction: float) -> str:
    """A fraction as the runbook writes rates, one decimal: 0.08 -> "8.0 %",
    0.053667 -> "5.4 %". A value that would round onto a whole percent it is
    not (0.050001 -> "5.0001 %", 0.0603333 -> "6.03 %") keeps as many decimals as
    it takes, so a reading never looks like it sits exactly on a threshold when
    it does not, and never more (no "6.033333 %")."""
    value = fraction * 100
    short = f"{value:.1f}"
    if short.endswith(".0") and value != float(short):
        # Only as many decimals as it takes to show it is not whole: 6.033333 -> "6.03 %".
        for digits in range(2, 7):
            text = f"{value:.{digits}f}".rstrip("0")
            if not text.endswith("."):
                return f"{text} %"
        return f"{short} %"
    return f"{short} %"


def _error_rate(s: Snapshot) -> float | None:
    return s.metrics.error_rate


def _latency_ratio(s: Snapshot) -> float | None:
    now, before = s.metrics.latency_p95_ms, s.metrics.latency_p95_before_ms
    if now is None or before is None or before <= 0:
        return None
    return now / before


def _latency_spike(s: Snapshot, f: Facts, t: Thresholds) -> bool:
    ratio = _latency_ratio(s)
    return s.signals.latency_spike or (ratio is not None and ratio >= t.latency_spike_factor)


def _latency_detail(s: Snapshot, f: Facts, t: Thresholds) -> str:
    ratio = _latency_ratio(s)
    if ratio is not None:
        return (
            f"p95 {s.metrics.latency_p95_ms:.0f} ms, {ratio:.1f}x the "
            f"{s.metrics.latency_p95_before_ms:.0f} ms before the deploy"
        )
    if s.signals.latency_factor is not None:
        return f"p95 {s.signals.latency_factor:.1f}x the latency before the deploy"
    return "p95 latency spiked"


def _down_detail(s: Snapshot, f: Facts, t: Thresholds) -> str:
    h = s.health
    parts = []
    if h.desired is not None and h.desired > 0 and h.ready == 0:
        parts.append(f"0 of {h.desired} pods ready")
    if h.endpoint_ok is False:
        parts.append(f"health endpoint: {h.endpoint_status or 'failing'}")
    return "; ".join(parts)


def _single_endpoint_detail(s: Snapshot, f: Facts, t: Thresholds) -> str:
    route = s.signals.single_endpoint or ""
    rate = dict(s.metrics.route_error_rates).get(route)
    return f"{route} ({percent(rate)} errors)" if rate is not None else route


def _intermittent_detail(s: Snapshot, f: Facts, t: Thresholds) -> str:
    if s.signals.crossings:
        return f"error rate crossed the threshold {s.signals.crossings} times"
    return "errors come and go"


def _migration_blocks(f: Facts) -> bool:
    # Unknown reversibility is read as irreversible: the safe reading.
    return f.migration_applied and f.migration_reversible is not True


def _migration_detail(s: Snapshot, f: Facts, t: Thresholds) -> str:
    name = f"{f.migration_name}: " if f.migration_name else ""
    if f.migration_reversible is True:
        return f"{name}reversible; roll back the application first, then the migration"
    known = "not reversible" if f.migration_reversible is False else "not known to be reversible"
    return f"{name}{known}; rollback could cause data loss"


def _no_detail(s: Snapshot, f: Facts, t: Thresholds) -> str:
    return ""


def _fact_row(table: Table, condition: str, action: str, fact: str, detail: Detail = _no_detail) -> Row:
    """A row the operator's facts drive: it fires when `Facts.<fact>` is true."""
    return Row(table, condition, action, lambda s, f, t: getattr(f, fact), detail, from_facts=True)


ROWS: tuple[Row, ...] = (
    Row(
        Table.ROLLBACK_IMMEDIATELY,
        "Service completely down",
        "Rollback now",
        lambda s, f, t: s.health.completely_down,
        _down_detail,
    ),
    Row(
        Table.ROLLBACK_IMMEDIATELY,
        "Error rate > 5%",
        "Rollback now",
        lambda s, f, t: (r := _error_rate(s)) is not None and r > t.rollback_error_rate,
        lambda s, f, t: percent(s.metrics.error_rate or 0.0),
    ),
    _fact_row(Table.ROLLBACK_IMMEDIATELY, "Data corruption detected", "Rollback now + freeze writes", "data_corruption"),
    _fact_row(Table.ROLLBACK_IMMEDIATELY, "Security vulnerability active", "Rollback now", "security_vulnerability"),
    Row(
        Table.INVESTIGATE_FIRST,
        "Error rate 1-5%",
        "Investigate 5 min, then decide",
        lambda s, f, t: (r := _error_rate(s)) is not None
        and t.investigate_error_rate <= r <= t.rollback_error_rate,
        lambda s, f, t: percent(s.metrics.error_rate or 0.0),
    ),
    Row(
        Table.INVESTIGATE_FIRST,
        "Latency spike",
        "Investigate 5 min, then decide",
        _latency_spike,
        _latency_detail,
    ),
    Row(
        Table.INVESTIGATE_FIRST,
        "Single endpoint failing",
        "Investigate, may not need full rollback",
        lambda s, f, t: bool(s.signals.single_endpoint),
        _single_endpoint_detail,
    ),
    Row(
        Table.INVESTIGATE_FIRST,
        "Intermittent errors",
        "Investigate, may be transient",
        lambda s, f, t: s.signals.intermittent,
        _intermittent_detail,
    ),
    _fact_row(Table.DO_NOT_ROLLBACK, "Database migration applied", "Fix forward (rollback could cause data loss)",
              "migration_applied", _migration_detail),
    _fact_row(Table.DO_NOT_ROLLBACK, "Minor bug, workaround exists", "Hotfix", "minor_bug_workaround"),
    _fact_row(Table.DO_NOT_ROLLBACK, "External service issue", "Wait for external fix", "external_service_issue"),
)

ROWS_BY_CONDITION: dict[str, Row] = {row.condition: row for row in ROWS}

FIX_FORWARD_ALTERNATIVES: tuple[str, ...] = (
    "Deploy a hotfix that works with the new schema",
    "Feature flag: disable the feature using the new schema",
    "Partial rollback to a version that works with the new schema",
)
PARTIAL_ROLLBACK = "Partial rollback to a version that works with the new schema (do not roll back the migration)"
CORRUPTION_ALTERNATIVES: tuple[str, ...] = (
    "Restore from backup if needed (backup taken before the deploy)",
    "Or run a data fix script",
)
HOTFIX = "Hotfix (a workaround exists)"
UNAVAILABLE_CONDITION = "Signals unavailable"
METRIC_SIGNALS = frozenset({"error rate", "metrics"})
"""`Missing.signal` names that mean the error rate cannot be trusted."""
UNAVAILABLE_ALTERNATIVES: tuple[str, ...] = (
    "Rollback now once fresh data confirms it (or the service is seen down)",
    "Check the signal sources: the errors say which one failed and why",
)

_URGENCY = {action: len(Action) - index for index, action in enumerate(Action)}


def urgency(action: Action) -> int:
    """How urgent an action is: higher is more urgent, ROLLBACK_NOW the most,
    HEALTHY the least (the order of `Action`)."""
    return _URGENCY[action]


def triage_key(view: ServiceView) -> tuple:
    """Sort key of the war room's service table, most urgent first: the
    decision, then the error rate, then the p95 latency (higher first), then the
    share of pods ready (lower first), then the newest deploy, then the name.
    Unknown figures sort after known ones of the same decision."""
    metrics, health = view.snapshot.metrics, view.snapshot.health
    error = metrics.error_rate if metrics.error_rate is not None else -1.0
    p95 = metrics.latency_p95_ms if metrics.latency_p95_ms is not None else -1.0
    ready = health.ready / health.desired if health.desired and health.ready is not None else 1.0
    current = view.snapshot.current_revision
    deployed = current.created.timestamp() if current is not None and current.created is not None else 0.0
    return (-urgency(view.decision.action), -error, -p95, ready, -deployed, view.snapshot.service)


def needs_action(view: ServiceView) -> bool:
    """The service's decision asks the operator for something (anything but HEALTHY)."""
    return urgency(view.decision.action) > urgency(Action.HEALTHY)


def evaluate(
    snapshot: Snapshot,
    facts: Facts,
    now: datetime,
    thresholds: Thresholds = Thresholds(),
) -> Decision:
    """What the runbook calls for, given what was seen and what is known.

    `reasons` lists every row that fired: the rows that decided come first,
    then the others, each group in runbook order. The precedence between
    conflicting rows is the module docstring's list.
    """
    fired = {row.condition: row for row in ROWS if row.fires(snapshot, facts, thresholds)}

    def reasons(*deciding: str, first: tuple[Reason, ...] = ()) -> tuple[Reason, ...]:
        head = [ROWS_BY_CONDITION[c] for c in deciding if c in fired]
        tail = [row for row in fired.values() if row not in head]
        return first + tuple(row.reason(snapshot, facts, thresholds) for row in head + tail)

    missing = unavailable(snapshot)

    def decide(action: Action, why: tuple[Reason, ...], alternatives: tuple[str, ...] = (), **kw) -> Decision:
        return Decision(action, why, alternatives, stale=snapshot.stale, unavailable=missing, **kw)

    migration_blocks = _migration_blocks(facts)
    hotfix = (HOTFIX,) if facts.minor_bug_workaround else ()

    # 1. Data corruption beats everything.
    if "Data corruption detected" in fired:
        return decide(
            Action.ROLLBACK_NOW,
            reasons("Data corruption detected"),
            CORRUPTION_ALTERNATIVES,
            freeze_writes=True,
        )

    # 2. An active security hole is closed even past an irreversible migration.
    if "Security vulnerability active" in fired:
        return decide(
            Action.ROLLBACK_NOW,
            reasons("Security vulnerability active"),
            (PARTIAL_ROLLBACK,) if migration_blocks else (),
        )

    # 3. Rolling back past an irreversible migration could lose data.
    if migration_blocks:
        return decide(Action.FIX_FORWARD, reasons("Database migration applied"), FIX_FORWARD_ALTERNATIVES)

    signal_rollback = [c for c in ("Service completely down", "Error rate > 5%") if c in fired]

    # 4. Rolling back our deploy cannot fix a dependency.
    if "External service issue" in fired:
        alternatives = (
            ("Rollback now only if the deploy, not the external service, turns out to be the cause",)
            if signal_rollback
            else ()
        )
        return decide(Action.WAIT_EXTERNAL, reasons("External service issue"), alternatives)

    investigate_rows = [row.condition for row in ROWS if row.table is Table.INVESTIGATE_FIRST and row.condition in fired]
    deadline = (facts.investigation_started_at or now) + thresholds.investigate_window

    # 5. Down or failing more than 5 %. Pods and the health endpoint are read
    # fresh every cycle (`Snapshot.stale` is about the metrics), so a service
    # seen down is rolled back whatever Prometheus says; an error rate that
    # cannot be trusted (stale, or its query failed) rolls nothing back.
    gaps = [str(m) for m in missing]
    if missing and snapshot.health.endpoint_unanswered:
        gaps.append(f"health endpoint: {snapshot.health.endpoint_status or 'no answer'} (with the pods unknown, "
                    "not proof the service is down: it may be this console's network)")
    gap = (Reason(Table.INVESTIGATE_FIRST, UNAVAILABLE_CONDITION, "; ".join(gaps)),) if missing else ()
    if snapshot.stale or any(m.signal in METRIC_SIGNALS for m in missing):
        signal_rollback = [c for c in signal_rollback if c != "Error rate > 5%"]
    if signal_rollback:
        head = reasons(*signal_rollback, "Database migration applied")
        return decide(Action.ROLLBACK_NOW, head[: len(signal_rollback)] + gap + head[len(signal_rollback):], hotfix)

    # 5b. Unknown is not healthy: what the decision needs and does not have.
    if missing:
        return decide(Action.SIGNALS_UNAVAILABLE, reasons(first=gap), UNAVAILABLE_ALTERNATIVES + hotfix)

    # 6. The softer signals: investigate, then decide.
    if investigate_rows:
        return decide(Action.INVESTIGATE, reasons(*investigate_rows), ("Rollback now",) + hotfix, deadline=deadline)

    # 7. A minor bug with a workaround is hotfixed, not rolled back.
    if "Minor bug, workaround exists" in fired:
        return decide(Action.HOTFIX, reasons("Minor bug, workaround exists"))

    # 8. Nothing fired, or only a reversible migration.
    return decide(Action.HEALTHY, reasons())


def unavailable(snapshot: Snapshot) -> tuple[Missing, ...]:
    """What the decision needs and cannot trust in `snapshot`: the poller's
    list, and the metrics when they are stale without the poller naming them."""
    missing = snapshot.unavailable
    if snapshot.stale and not missing:
        missing = (Missing("metrics", snapshot.metrics.sampled_at, "stale or a query failed"),)
    return missing
