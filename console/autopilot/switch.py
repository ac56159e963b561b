"""The autopilot's kill switch, where every autopilot and console can see it.

Two records, each read by the autopilot before it acts (README "Autopilot"):

- the incident store (`Journal.switch`): everyone using the same store;
- the cluster: while a Lease named `rollback-console-autopilot-paused` exists
  in a service's namespace, no autopilot rolls that service back, whatever
  store it keeps. The cluster's own record is what an autopilot running in a
  pod with a store of its own reads, and what an engineer with only kubectl
  can set or clear (`kubectl delete lease -n NS rollback-console-autopilot-paused`).
  Its holderIdentity says who paused it; annotations say when and why.

The console's `A` key (`toggle_pause`, from a worker: it makes requests) flips
both: the store, and the Lease in every namespace of the console's Kubernetes
services. A namespace whose Lease cannot be read counts as paused for the
autopilot (it does not act on a switch it cannot see), and a Lease the console
could not write is said, with the command that writes it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.autopilot.journal import Journal, Switch
from console.platforms.base import Leased, PlatformError
from console.platforms.lease import PAUSE_LEASE, PauseLease


def pause_lease(session, service: str) -> PauseLease | None:
    """The kill switch's Lease in `service`'s namespace, None for platforms
    without a Kubernetes API (Compose, ECS: the store's switch only)."""
    platform = session.platform(service)
    return PauseLease.of(platform) if isinstance(platform, Leased) else None


def cluster_pause(session, service: str) -> str | None:
    """Why the cluster's kill switch stops the autopilot from rolling `service`
    back (None when it does not): a pause recorded in the service's namespace,
    or a switch that cannot be read (fail safe)."""
    lease = pause_lease(session, service)
    if lease is None:
        return None
    try:
        pause = lease.read()
    except PlatformError as err:
        return (f"its kill switch, the Lease {lease.ref}, could not be read ({err}); "
                "it does not act on a switch it cannot see")
    return pause.sentence() if pause is not None else None


def autopilot_switch(session) -> Switch | None:
    """The switch as the store records it (None: never set)."""
    journal = Journal(session.store.path)
    try:
        return journal.switch()
    finally:
        journal.close()


@dataclass(frozen=True)
class Toggled:
    """What the `A` key did: the switch now, and the namespaces written or not."""

    switch: Switch
    # "shop/rollback-console-autopilot-paused", ...
    written: tuple[str, ...]
    # Sentences: a namespace whose Lease could not be read or written.
    problems: tuple[str, ...]


def _places(session) -> list[PauseLease]:
    """One Lease per (cluster, namespace) of the session's Kubernetes services."""
    places: dict[tuple[int, str], PauseLease] = {}
    for service in session.services:
        lease = pause_lease(session, service)
        if lease is not None:
            places.setdefault((id(lease.connection), lease.namespace), lease)
    return list(places.values())


def toggle_pause(session, service: str | None = None) -> Toggled:
    """Pause the autopilot for everyone (or resume it): the session's store and
    the Lease in every namespace of its Kubernetes services. Paused now means
    either record says so; resuming clears both. The open incident of
    `service` (when there is one) gets a timeline note saying who did it and
    what could not be written."""
    places = _places(session)
    problems: list[str] = []
    in_cluster = False
    for lease in places:
        try:
            in_cluster = in_cluster or lease.read() is not None
        except PlatformError as err:
            problems.append(f"{lease.ref} could not be read: {err}")
    journal = Journal(session.store.path)
    try:
        current = journal.switch()
        paused = not ((current is not None and current.paused) or in_cluster)
        reason = "paused from the console" if paused else "resumed from the console"
        now = session.clock.now()
        switch = journal.set_paused(paused, session.operator, reason, now)
    finally:
        journal.close()
    written: list[str] = []
    for lease in places:
        try:
            if paused:
                lease.pause(session.operator, reason, now)
            else:
                lease.resume()
        except PlatformError as err:
            problems.append(f"{lease.ref} could not be {'created' if paused else 'deleted'}: {err}")
        else:
            written.append(lease.ref)
    toggled = Toggled(switch, tuple(written), tuple(problems))
    if service is not None and session.store.open_incident_for(service):
        session.note(f"AUTOPILOT {toggled_words(toggled)} (by {session.operator})", service=service)
    return toggled


def toggled_words(toggled: Toggled) -> str:
    """The toast's and the timeline's sentence."""
    if toggled.switch.paused:
        head = "paused: it rolls nothing back"
        where = "for everyone on this incident store"
        if toggled.written:
            where += f" and in the cluster (Lease {PAUSE_LEASE} in {_namespaces(toggled.written)})"
    else:
        head = "resumed: it acts on alerts again"
        where = "on this incident store"
        if toggled.written:
            where += f" and in the cluster (Lease {PAUSE_LEASE} deleted in {_namespaces(toggled.written)})"
    text = f"{head}, {where}"
    if toggled.problems:
        fix = ("an autopilot with a store of its own is NOT paused there: apply a Lease named "
               f"{PAUSE_LEASE} in that namespace (README \"Autopilot\"), or touch its pause file"
               if toggled.switch.paused else
               f"autopilots go on refusing there until it is deleted: kubectl delete lease -n NAMESPACE {PAUSE_LEASE}")
        text += f". NOT written: {'; '.join(toggled.problems)}; {fix}"
    return text


def _namespaces(refs: tuple[str, ...]) -> str:
    names = sorted({ref.split("/", 1)[0] for ref in refs})
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
