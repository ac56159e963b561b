"""The kill switch's TUI side: pause (or resume) the autopilot for everyone
using this incident store, recorded with who and when. No textual here: the
app calls `toggle_pause` from a worker."""

from __future__ import annotations

from console.autopilot.journal import Journal, Switch


def autopilot_switch(session) -> Switch | None:
    """The switch as the store records it (None: never set)."""
    journal = Journal(session.store.path)
    try:
        return journal.switch()
    finally:
        journal.close()


def toggle_pause(session, service: str | None = None) -> Switch:
    """Flip the switch in the session's store; the open incident of `service`
    (when there is one) gets a timeline note saying who did it."""
    journal = Journal(session.store.path)
    try:
        current = journal.switch()
        paused = not (current is not None and current.paused)
        reason = "paused from the console" if paused else "resumed from the console"
        switch = journal.set_paused(paused, session.operator, reason, session.clock.now())
    finally:
        journal.close()
    if service is not None and session.store.open_incident_for(service):
        words = "paused: it rolls nothing back" if paused else "resumed: it acts on alerts again"
        session.note(f"AUTOPILOT {words} (by {session.operator}, for everyone on this incident store)",
                     service=service)
    return switch
