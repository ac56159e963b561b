"""Frozen data shared by every layer: sources produce it, the core reasons over
it, the UI renders it. Nothing here does I/O or imports a UI toolkit.

Every class is a frozen, slotted dataclass (no `__dict__` per instance): a
500-service console holds hundreds of thousands of them (issue 17, peak RSS).

Times are timezone-aware UTC datetimes. Error rates are fractions (0.08 is
8 %). Latencies are milliseconds.
"""

from __future__ import annotations

import enum
import itertools
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from dataclasses import dataclass, field
from datetime import datetime, timezone

if TYPE_CHECKING:
    from console.provenance import Provenance


class Action(str, enum.Enum):
    """What the runbook's decision framework calls for, most urgent first."""

    ROLLBACK_NOW = "rollback_now"
    # A signal the decision needs is missing or stale: the console cannot say
    # the service is healthy, and does not roll back on what it cannot see.
    SIGNALS_UNAVAILABLE = "signals_unavailable"
    INVESTIGATE = "investigate"
    FIX_FORWARD = "fix_forward"
    HOTFIX = "hotfix"
    WAIT_EXTERNAL = "wait_external"
    HEALTHY = "healthy"

    @property
    def headline(self) -> str:
        """The banner text, in the runbook's words."""
        return _HEADLINES[self]


_HEADLINES = {
    Action.ROLLBACK_NOW: "ROLLBACK NOW",
    Action.SIGNALS_UNAVAILABLE: "SIGNALS UNAVAILABLE",
    Action.INVESTIGATE: "INVESTIGATE FIRST",
    Action.FIX_FORWARD: "DO NOT ROLL BACK: FIX FORWARD",
    Action.HOTFIX: "DO NOT ROLL BACK: HOTFIX",
    Action.WAIT_EXTERNAL: "DO NOT ROLL BACK: WAIT FOR EXTERNAL FIX",
    Action.HEALTHY: "HEALTHY",
}


class Table(str, enum.Enum):
    """The three tables of the runbook's decision framework."""

    ROLLBACK_IMMEDIATELY = "When to Rollback Immediately"
    INVESTIGATE_FIRST = "When to Investigate First"
    DO_NOT_ROLLBACK = "When NOT to Rollback"


@dataclass(frozen=True, slots=True)
class Point:
    """One sample of a time series."""

    at: datetime
    value: float


def epoch(at: datetime) -> float:
    """`at` (timezone-aware) as seconds since the epoch, the form `Samples` keeps."""
    return at.timestamp()


class Samples:
    """A sparkline's samples, oldest first, with strictly increasing times.

    Kept as two arrays of doubles (epoch seconds and values): 16 bytes a
    sample, where a tuple of `Point` objects took about 130 (the object, its
    datetime and its float). A 500-service console keeps two sparklines of up
    to a few hundred samples per service in each of its two processes, and
    the points were half its memory (issue 17, peak RSS).

    A Samples may be a window onto arrays it shares: a `Trail`'s (which only
    ever appends to them, so the window's samples never change) or another
    Samples' (`since`, `until`, slices). Handing out a sparkline then copies
    nothing: the copy per service per cycle, in both processes, was as much
    memory again as the trails themselves.

    Immutable by contract. It reads as a sequence of `Point` (iteration,
    indexing, slicing, equality with a tuple of points), built on demand; the
    hot paths use `since`, `until` and `values` instead, which build no
    objects. `times` and `values` are arrays of the window's samples (copies
    when the window is part of larger arrays).
    """

    __slots__ = ("_times", "_values", "_start", "_end")

    def __init__(self, times: Iterable[float] = (), values: Iterable[float] = ()) -> None:
        self._times = times if isinstance(times, array) else array("d", times)
        self._values = values if isinstance(values, array) else array("d", values)
        if len(self._times) != len(self._values):
            raise ValueError(f"Samples: {len(self._times)} times but {len(self._values)} values")
        self._start, self._end = 0, len(self._times)

    @classmethod
    def _window(cls, times: array, values: array, start: int, end: int) -> Samples:
        """Samples `start` to `end` of arrays that no one changes there (shared, not copied)."""
        window = cls.__new__(cls)
        window._times, window._values, window._start, window._end = times, values, start, end
        return window

    @classmethod
    def of(cls, points: Iterable[Point]) -> Samples:
        """From points in time order (what tests and older callers hold)."""
        if isinstance(points, Samples):
            return points
        points = list(points)
        return cls([epoch(p.at) for p in points], [p.value for p in points])

    @property
    def times(self) -> array:
        """The samples' times (epoch seconds)."""
        return self._slice(self._times)

    @property
    def values(self) -> array:
        """The samples' values."""
        return self._slice(self._values)

    def _slice(self, shared: array) -> array:
        if self._start == 0 and self._end == len(shared):
            return shared
        return shared[self._start:self._end]

    def last_time(self) -> float:
        """The newest sample's time (IndexError when empty)."""
        if self._end <= self._start:
            raise IndexError("no samples")
        return self._times[self._end - 1]

    def count_through(self, at: float) -> int:
        """How many samples are at or before `at` (epoch seconds)."""
        return bisect_right(self._times, at, self._start, self._end) - self._start

    def __len__(self) -> int:
        return self._end - self._start

    def __bool__(self) -> bool:
        return self._end > self._start

    def __iter__(self) -> Iterator[Point]:
        times, values = self._times, self._values
        for i in range(self._start, self._end):
            yield Point(datetime.fromtimestamp(times[i], timezone.utc), values[i])

    def __getitem__(self, index):
        span = range(self._start, self._end)[index]
        if isinstance(index, slice):
            if span.step == 1:
                return Samples._window(self._times, self._values, span.start, max(span.start, span.stop))
            return Samples(array("d", (self._times[i] for i in span)), array("d", (self._values[i] for i in span)))
        return Point(datetime.fromtimestamp(self._times[span], timezone.utc), self._values[span])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Samples):
            return self.times == other.times and self.values == other.values
        if isinstance(other, (tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.times.tobytes(), self.values.tobytes()))

    def __reduce__(self):
        return (Samples, (self.times, self.values))

    def __repr__(self) -> str:
        return f"Samples({len(self)} samples)"

    def since(self, at: datetime) -> Samples:
        """The samples at or after `at`."""
        start = bisect_left(self._times, epoch(at), self._start, self._end)
        return Samples._window(self._times, self._values, start, self._end)

    def until(self, at: datetime) -> Samples:
        """The samples at or before `at`."""
        end = bisect_right(self._times, epoch(at), self._start, self._end)
        return Samples._window(self._times, self._values, self._start, end)

    def shares_tail_with(self, before: Samples, dropped: int) -> bool:
        """True when this window starts `dropped` samples into `before` on the
        same arrays (a trail that dropped and appended since): their common
        samples are then the same by construction, with nothing to compare."""
        return (self._times is before._times and self._values is before._values
                and self._start == before._start + dropped and self._end >= before._end)


NO_SAMPLES = Samples()


ROOM_SHARE = 8
"""A trail's arrays keep room for one new sample per this many live ones (see Trail)."""
ROOM_MIN = 8
"""Samples of room a trail's arrays keep for new ones at least (see Trail)."""
ROOM_JITTER = 16
"""Up to this many more, different from trail to trail (see Trail)."""
_ROOM_JITTER = itertools.count()


class Trail:
    """A sparkline being recorded (the poller's) or received (the console's
    side of the refresh process): samples appended at the end, dropped from
    the start, handed out as `Samples` windows onto its own arrays.

    The arrays are made with room for the samples to come (an eighth of the
    live ones, ROOM_MIN at least) and are written only past every window
    handed out: a window's samples never change. Dropped samples stay in
    front until the room is used up; then the live samples move to new
    arrays with new room (the windows handed out keep the old ones). Growing
    the arrays sample by sample instead reallocated every trail's arrays in
    the same cycle (they all have the same length), and at 500 services the
    moves and the freed blocks between them were 3-4 MB of each process's
    peak (issue 17). A trail's room also differs by up to ROOM_JITTER samples
    from the next one's, so trails that fill up in step move on over a
    dozen cycles, not all in one.

    The Samples handed out are kept until the trail changes, so a quiet
    service's snapshots share one."""

    __slots__ = ("_times", "_values", "_start", "_end", "_jitter", "_samples")

    def __init__(self) -> None:
        self._times = array("d")
        self._values = array("d")
        self._start = 0
        self._end = 0
        self._jitter = next(_ROOM_JITTER) % ROOM_JITTER
        self._samples: Samples | None = NO_SAMPLES

    @property
    def times(self) -> array:
        """The trail's times now (a copy)."""
        return self._times[self._start:self._end]

    @property
    def values(self) -> array:
        """The trail's values now (a copy)."""
        return self._values[self._start:self._end]

    def __len__(self) -> int:
        return self._end - self._start

    def _move(self, times: array, values: array, coming: int = 0) -> None:
        """New arrays holding `times` and `values`, with room for `coming`
        samples and the trail's usual room besides."""
        room = array("d", bytes(8 * (coming + max(ROOM_MIN, len(times) // ROOM_SHARE) + self._jitter)))
        self._times, self._values = times + room, values + room
        self._start, self._end = 0, len(times)
        self._samples = None

    def append(self, at: float, value: float) -> None:
        """Add a sample newer than the last (an older or equal time is ignored)."""
        if self._end > self._start and at <= self._times[self._end - 1]:
            return
        if self._end == len(self._times):
            self._move(self.times, self.values, 1)
        self._times[self._end] = at
        self._values[self._end] = value
        self._end += 1
        self._samples = None

    def drop_before(self, at: float) -> None:
        """Forget the samples older than `at`."""
        self.drop_first(bisect_left(self._times, at, self._start, self._end) - self._start)

    def drop_first(self, count: int) -> None:
        if count <= 0:
            return
        self._start = min(self._end, self._start + count)
        self._samples = None

    def extend(self, samples: Samples) -> None:
        """Append samples that are all newer than the last one here."""
        count = len(samples)
        if not count:
            return
        if self._end + count > len(self._times):
            self._move(self.times, self.values, count)
        self._times[self._end:self._end + count] = samples.times
        self._values[self._end:self._end + count] = samples.values
        self._end += count
        self._samples = None

    def replace(self, samples: Samples) -> None:
        """The trail becomes a copy of `samples` (a range query's, or one that
        came through the pipe). The Samples handed out from now on are
        windows onto the trail's own arrays."""
        self._move(samples.times, samples.values)

    def samples(self) -> Samples:
        """The trail now, as immutable Samples (the same object while it does not change)."""
        if self._samples is None:
            self._samples = Samples._window(self._times, self._values, self._start, self._end)
        return self._samples


@dataclass(frozen=True, slots=True)
class Metrics:
    """What Prometheus (or the drill's query API) says about one service."""

    error_rate: float | None = None
    latency_p95_ms: float | None = None
    # p95 latency before the deploy under suspicion (the same query, offset).
    latency_p95_before_ms: float | None = None
    request_rate: float | None = None
    # Per-route error rates, route -> fraction.
    route_error_rates: tuple[tuple[str, float], ...] = ()
    # Recent history of the error rate and of the p95 (ms), oldest first. A
    # tuple of Points given here is turned into Samples.
    error_rate_history: Samples = NO_SAMPLES
    latency_history: Samples = NO_SAMPLES
    # When the values were sampled (Prometheus sample time), None if unknown:
    # the oldest of `sampled`.
    sampled_at: datetime | None = None
    # Sample time per signal ("error_rate", "latency_p95", "request_rate",
    # "route_error_rate"), for the ones that have a value.
    sampled: tuple[tuple[str, datetime], ...] = ()
    # Why the values are missing, as a sentence, when a query failed.
    error: str | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate_history", "latency_history"):
            value = getattr(self, name)
            if not isinstance(value, Samples):
                object.__setattr__(self, name, Samples.of(value))


@dataclass(frozen=True, slots=True)
class Health:
    """Pods from the platform plus the service's own health endpoint."""

    desired: int | None = None
    ready: int | None = None
    updated: int | None = None
    available: int | None = None
    # The health endpoint: True healthy, False unhealthy or unreachable, None not configured.
    endpoint_ok: bool | None = None
    # "healthy", "HTTP 503", "timeout after 2.0 s", "connection refused" ...
    endpoint_status: str = ""
    endpoint_latency_ms: float | None = None
    # How many checks in a row the endpoint has failed (0 when it answered healthy).
    endpoint_failures: int = 0
    # Failures in a row that make a failing endpoint count as down while pods
    # are ready (one timeout is a blip, not an outage).
    endpoint_failures_down: int = 1
    checked_at: datetime | None = None
    error: str | None = None
    # A deployment under way that is failing while the previous version may go on
    # serving (ECS: tasks of it failed; Kubernetes: past its progress deadline), as
    # a sentence for the health pane and `status`: worth a look, not a runbook row
    # (the signals decide).
    deployment_failing: str | None = None

    @property
    def completely_down(self) -> bool:
        """The runbook's "service completely down": pods wanted but none ready,
        or the health endpoint failing (timeouts and refused connections count):
        at once when no pod is ready, after `endpoint_failures_down` checks in a
        row when pods are. With the pods unknown (their read failed), only the
        endpoint's own answer (an HTTP error) says down: no answer at all may be
        this console's network as much as the service, and rolling back on it
        would roll back every service of a console that lost its VPN."""
        if self.desired is not None and self.desired > 0 and self.ready == 0:
            return True
        if self.endpoint_ok is not False:
            return False
        if self.ready is None:
            return self._endpoint_answered
        return self.ready == 0 or self.endpoint_failures >= self.endpoint_failures_down

    @property
    def _endpoint_answered(self) -> bool:
        return self.endpoint_latency_ms is not None or self.endpoint_status.startswith("HTTP ")

    @property
    def endpoint_unanswered(self) -> bool:
        """The health endpoint failed without answering (timeout, refused) while the pods are unknown."""
        return self.endpoint_ok is False and not self._endpoint_answered and self.ready is None


SCHEMA_ANNOTATION = "rollback-console/schema"
"""Marks a release with the migration it needs (e.g. `0042_split_address`):
an annotation on a Deployment's pod template (so every ReplicaSet revision
keeps it) or on the ReplicaSet, and an image label (`LABEL
rollback-console/schema=...`) for Compose. It lets the console find the
runbook's partial rollback target: the newest older revision that works with
a migration that cannot be undone."""


@dataclass(frozen=True, slots=True)
class Revision:
    """One entry of a platform's rollout history."""

    number: int
    images: tuple[str, ...]
    change_cause: str | None = None
    created: datetime | None = None
    current: bool = False
    # Platform object behind it: ReplicaSet name, task definition ARN, tag ...
    ref: str = ""
    # The migration this revision needs (it works with that schema and later
    # ones), when the release says so: the SCHEMA_ANNOTATION annotation on a
    # Kubernetes revision, the same label on a Compose image. The config's
    # database.schema_requirements wins over it.
    schema: str | None = None
    # Where a plain rollback goes, when the platform picks it by evidence rather
    # than by revision number (Compose); the UI's hint and history mark it.
    rollback_target: bool = False
    # Blue-green: the colour whose Deployment this is; its number is that
    # Deployment's own revision, so two colours may carry the same number.
    colour: str | None = None

    @property
    def label(self) -> str:
        """"revision 3", or "blue · revision 3" for a blue-green colour (as kubectl numbers it)."""
        return revision_label(self.number, self.colour)

    @property
    def target(self) -> int | ColourRevision:
        """The `to_revision` that plans a rollback to exactly this revision: its
        number, or the colour with its number for a blue-green colour (both
        colours' Deployments may carry one number)."""
        return ColourRevision(self.colour, self.number) if self.colour else self.number

    @property
    def versions(self) -> tuple[str, ...]:
        """Image tags, "1.2.3" for "registry/app:1.2.3"."""
        return tuple(image_tag(image) for image in self.images)


# -- how a revision is named: written (labels) and read (`--to-revision`) -----------

@dataclass(frozen=True)
class ColourRevision:
    """A blue-green revision named by its colour: `blue:3` (blue's Deployment at
    its revision 3) or `blue` (blue as its Deployment is now). A blue-green
    rollback switches the traffic to a colour; the number, when given, must be
    the one that colour's Deployment carries (the switch cannot bring back an
    older revision of a colour)."""

    colour: str
    number: int | None = None

    def __str__(self) -> str:
        """The form `--to-revision` takes: "blue:3" or "blue"."""
        return f"{self.colour}:{self.number}" if self.number is not None else self.colour


# A colour is a Kubernetes label value (the Service selector's value).
_COLOUR = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_NUMBER = re.compile(r"[+-]?[0-9]+")
TO_REVISION_FORMS = ("a revision number (3), or for a blue-green service a colour (blue) or a colour "
                     "and its revision (blue:3)")


def parse_revision(text: str) -> int | ColourRevision:
    """`--to-revision`'s value: "3" -> 3, "blue:3" -> ColourRevision("blue", 3),
    "blue" -> ColourRevision("blue"). ValueError with a sentence naming what is
    wrong and what to type."""
    value = text.strip()
    if not value:
        raise ValueError(f"--to-revision is empty: give {TO_REVISION_FORMS}.")
    if _NUMBER.fullmatch(value):
        return _revision_number(value, text)
    colour, sep, number = (part.strip() for part in value.partition(":"))
    if not _COLOUR.fullmatch(colour) or colour.isdigit():
        what = f"{colour!r} is not a colour name (a Kubernetes label value such as blue)" if colour else \
            "there is no colour before the colon"
        raise ValueError(f"--to-revision {text!r}: {what}; give {TO_REVISION_FORMS}.")
    if not sep:
        return ColourRevision(colour)
    if not _NUMBER.fullmatch(number):
        what = f"{number!r} after the colon is not a revision number" if number else "there is no revision after the colon"
        raise ValueError(f"--to-revision {text!r}: {what}; give one like {colour}:3 (the number "
                         f"`kubectl rollout history` shows for {colour}'s Deployment), or {colour} alone for "
                         f"that colour as it is now.")
    return ColourRevision(colour, _revision_number(number, text))


def _revision_number(digits: str, text: str) -> int:
    number = int(digits)
    if number < 1:
        raise ValueError(f"--to-revision {text!r}: revisions are numbered from 1, as `kubectl rollout history` "
                         f"shows them; give {TO_REVISION_FORMS}.")
    return number


def revision_label(number: int | None, colour: str | None = None) -> str:
    """The one way a revision is written out: "revision 3"; "blue · revision 3"
    for a blue-green colour (its Deployment's own number, as kubectl shows it);
    "blue" when the colour's number is unknown; "unknown revision" for neither."""
    if colour:
        return f"{colour} · revision {number}" if number is not None else colour
    return f"revision {number}" if number is not None else "unknown revision"


def target_label(target: int | ColourRevision | None) -> str:
    """A `to_revision` written out: "revision 3", "blue · revision 2", "blue"."""
    if isinstance(target, ColourRevision):
        return revision_label(target.number, target.colour)
    return revision_label(target)


def revision_cell(number: int | None, colour: str | None = None) -> str:
    """A revision in a table's narrow Rev column: "3", or "blue · 3"."""
    if colour:
        return f"{colour} · {number}" if number is not None else colour
    return str(number) if number is not None else ""


def revision_change(from_number: int | None, to_number: int | None, from_colour: str | None = None,
                    to_colour: str | None = None) -> str:
    """A rollback's revisions: "revision 3 → 2"; for blue-green, where each
    colour numbers its own, "green · revision 2 → blue · revision 2"."""
    if from_colour or to_colour:
        return f"{revision_label(from_number, from_colour)} → {revision_label(to_number, to_colour)}"
    return f"revision {from_number} → {to_number}"


def versions_label(versions, number: int | None, colour: str | None = None) -> str:
    """What a rollback goes from or to, for messages and exports: the versions
    ("1.2.2"), with the colour for blue-green ("1.4.0 (blue · revision 2)");
    the revision when the versions are unknown; "unknown" for nothing."""
    shown = ", ".join(versions)
    if shown and colour:
        return f"{shown} ({revision_label(number, colour)})"
    if shown:
        return shown
    return revision_label(number, colour) if number is not None or colour else "unknown"


def older_revisions(history, current: Revision) -> list[Revision]:
    """What a rollback from `current` can go back to: the revisions numbered
    below it, or, for blue-green colours (each numbered by its own Deployment),
    the other colours."""
    if current.colour is not None:
        return [r for r in history if r.colour is not None and r.colour != current.colour]
    return [r for r in history if r.number < current.number]


def image_tag(image: str) -> str:
    """The tag of an image reference ("latest" when there is none)."""
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return name.split("@", 1)[1][:19]
    return name.split(":", 1)[1] if ":" in name else "latest"


@dataclass(frozen=True, slots=True)
class Signals:
    """Derived observations for the runbook's softer rows, computed by sources."""

    latency_spike: bool = False
    latency_factor: float | None = None
    single_endpoint: str | None = None
    intermittent: bool = False
    crossings: int = 0
    # False while the error rate's 30-minute history is not loaded (the refresh
    # process shows the first values before it; a failed range query): the
    # crossings, and so "intermittent", count only the points seen so far.
    history_loaded: bool = True


@dataclass(frozen=True, slots=True)
class Missing:
    """A signal the decision needs that this refresh could not read fresh."""

    signal: str  # "error rate", "pod counts"
    # When a good value was last read (its sample time); None: never.
    since: datetime | None = None
    # Why, in a few words: "no answer", "no data", "stale", "not read yet".
    why: str = ""

    def __str__(self) -> str:
        when = f"last read {self.since.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC" if self.since else "never read"
        return f"{self.signal} ({self.why + ', ' if self.why else ''}{when})"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything known about one service at one refresh."""

    service: str
    taken_at: datetime
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=Health)
    history: tuple[Revision, ...] = ()
    signals: Signals = field(default_factory=Signals)
    # True when the metric values are older than the staleness limit.
    stale: bool = False
    # Source failures as operator sentences.
    errors: tuple[str, ...] = ()
    # Signals the decision needs that are missing or stale (set by the poller,
    # which knows what is configured).
    unavailable: tuple[Missing, ...] = ()
    # What the objects record about past rollbacks (console.provenance.Provenance),
    # read with this refresh; None when the platform records none or has not read it yet.
    provenance: Provenance | None = None

    @property
    def current_revision(self) -> Revision | None:
        return next((r for r in self.history if r.current), None)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the operator declares (or a source detects) that signals cannot show."""

    data_corruption: bool = False
    security_vulnerability: bool = False
    migration_applied: bool = False
    # None: unknown, treated as not reversible (the safe reading).
    migration_reversible: bool | None = None
    migration_name: str | None = None
    minor_bug_workaround: bool = False
    external_service_issue: bool = False
    infrastructure_issue: bool = False
    customer_impact_since: datetime | None = None
    # When the operator started the 5-minute investigation, if they did.
    investigation_started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    """One runbook row that fired, with the value that made it fire."""

    table: Table
    condition: str  # the runbook's own words, e.g. "Error rate > 5%"
    detail: str = ""  # the observed value, e.g. "8.0 %"

    def __str__(self) -> str:
        return f"{self.condition}: {self.detail}" if self.detail else self.condition


@dataclass(frozen=True, slots=True)
class Decision:
    """The decision framework's verdict for one service at one moment."""

    action: Action
    reasons: tuple[Reason, ...] = ()
    # Other actions the runbook offers here, in its words.
    alternatives: tuple[str, ...] = ()
    # For INVESTIGATE: when the 5-minute window ends.
    deadline: datetime | None = None
    freeze_writes: bool = False
    # The signals were stale: the decision says so and does not roll back on them alone.
    stale: bool = False
    # What the decision needed and did not have (SIGNALS UNAVAILABLE says so).
    unavailable: tuple[Missing, ...] = ()

    @property
    def headline(self) -> str:
        return self.action.headline


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request or command a plan will make, shown before it is made."""

    method: str  # PATCH, POST, PUT or "exec" for commands
    target: str  # URL path or argv joined for display
    body: str = ""  # JSON body or stdin, already rendered

    def __str__(self) -> str:
        return f"{self.method} {self.target}" + (f"\n{self.body}" if self.body else "")


@dataclass(frozen=True, slots=True)
class TargetCandidate:
    """One version a rollback could go to, with where the console learned of it
    (its provenance), so the plan can say why it picked one and the gate can
    apply its rules (never one rolled back from) to the same data."""

    image: str
    # Where it was found: "git history", "engine", "registry", "seen running" ...
    sources: tuple[str, ...]
    # The console itself saw it running here (its state dir's record, or now).
    seen_running: bool = False
    # A rollback went away from it (the console's record, or the file's git history).
    rolled_back_from: bool = False
    # The engine's image creation time, when the engine has the image.
    created: datetime | None = None
    # The newest git commit whose compose file named it (short hash), if any.
    commit: str = ""
    # Why it counts as rolled back from, or other remarks, as a sentence.
    note: str = ""

    @property
    def version(self) -> str:
        return image_tag(self.image)


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """A pure description of a rollback, shown to the operator before it runs."""

    service: str
    platform: str
    from_revision: int | None
    to_revision: int | None
    from_images: tuple[str, ...] = ()
    to_images: tuple[str, ...] = ()
    calls: tuple[ApiCall, ...] = ()
    # Set when there is nothing to do (kubectl's "skipped rollback").
    skip_reason: str | None = None
    # The state the operator saw; the change is refused if it moved since.
    resource_version: str | None = None
    summary: str = ""
    # The rollback this plan completes, as a sentence ("" when none): Compose's full
    # rollback after a quick one. The decision to roll back was taken (and gated)
    # when the quick rollback went ahead; this plan only finishes it.
    finishes: str = ""
    # What the target could have been (platforms that search for it: Compose),
    # newest first, and why the target was picked among them.
    candidates: tuple[TargetCandidate, ...] = ()
    choice: str = ""
    # Requests made before `calls`: pausing the service's GitOps owner (README "GitOps (Argo CD and Flux)").
    pre_calls: tuple[ApiCall, ...] = ()
    # The service's GitOps owner (`console.gitops.Owner`), None when nothing deploys it from git.
    owner: Any = None

    # Blue-green: the colours switched from and to (their numbers are their own Deployments').
    from_colour: str | None = None
    to_colour: str | None = None

    @property
    def from_label(self) -> str:
        """"revision 3", or "green · revision 2" for blue-green (`revision_label`)."""
        return revision_label(self.from_revision, self.from_colour)

    @property
    def to_label(self) -> str:
        return revision_label(self.to_revision, self.to_colour)

    @property
    def target(self) -> int | ColourRevision | None:
        """The `to_revision` that names this plan's target exactly (the colour with it for blue-green)."""
        if self.to_colour:
            return ColourRevision(self.to_colour, self.to_revision)
        return self.to_revision

    @property
    def from_versions(self) -> tuple[str, ...]:
        return tuple(image_tag(i) for i in self.from_images)

    @property
    def to_versions(self) -> tuple[str, ...]:
        return tuple(image_tag(i) for i in self.to_images)


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of a running rollback, worded like `kubectl rollout status`."""

    message: str
    at: datetime
    done: bool = False
    failed: bool = False
    updated: int | None = None
    ready: int | None = None
    desired: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of an incident's timeline."""

    at: datetime
    kind: str  # "decision", "fact", "rollback", "progress", "message", "checklist", "note", "signal"
    text: str
    actor: str = "console"
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceView:
    """One service as the panes show it: what was seen and what the runbook says."""

    snapshot: Snapshot
    decision: Decision
