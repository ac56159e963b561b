"""`rollback-console autopilot`: the receiver, the worker and the lease, wired
and run until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

from console.config import Config


class AutopilotError(Exception):
    """The autopilot cannot start; str() says why and what to do (exit 2)."""


def serve(config: Config, store_path: Path, *, shadow: bool = False, out: Callable[[str], None] = print,
          stop: threading.Event | None = None) -> None:
    """Run the autopilot until `stop` is set (by default: SIGTERM or SIGINT); prints `ready` when listening."""
    from console.autopilot.journal import Journal
    from console.autopilot.leader import Leadership, identity
    from console.autopilot.pilot import Autopilot
    from console.autopilot.receiver import Receiver
    from console.session import Session
    from console.sources import _connection
    from console.store import Store

    settings = config.autopilot
    if settings is None:
        raise AutopilotError("the config has no autopilot: section; add one (see config.example.yaml)")
    token = settings.token()
    if token is None:
        raise AutopilotError(f"the environment variable {settings.token_env} (autopilot.token_env) holding the "
                             "bearer token is not set; export it (the same token as Alertmanager's receiver)")
    session = Session(config, Store(store_path), operator=settings.operator)
    journal = Journal(store_path)
    leadership: Leadership | None = None
    pilot = Autopilot(config, session, journal, shadow=shadow, out=out)
    election = settings.leader_election
    if election is not None:
        connection = _connection(config, _ClusterRef(election.cluster), {})
        leadership = Leadership(connection, election.namespace, identity(settings.operator), election.lease_seconds,
                                on_elected=pilot.resume, clock=session.clock, out=out)
        pilot.is_leader = leadership.is_leader
    try:
        receiver = Receiver(settings.host_port(), pilot, token, settings.max_body_bytes)
    except OSError as err:
        session.close()
        journal.close()
        raise AutopilotError(f"cannot listen on {settings.listen} (autopilot.listen): {err.strerror}; "
                             "choose a free address") from None
    stop = stop or _signals()
    _warm_up(session, out)
    pilot.start()
    if leadership is None:
        pilot.resume()
    else:
        leadership.start()
    receiver.serve_in_thread()
    out(f"autopilot listening at {receiver.url}/alertmanager" + (" (shadow: records and posts, changes nothing)"
                                                                 if shadow else ""))
    out("ready")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        receiver.close()
        if leadership is not None:
            leadership.stop()
        pilot.stop()
        session.close()
        journal.close()


def _warm_up(session, out: Callable[[str], None]) -> None:
    """One refresh before `ready`: the clients, the kubeconfig and the rollout
    histories are loaded then, not while an alert waits (a cold first alert
    took seconds)."""
    try:
        views = session.run(session.refresh())
    except Exception as err:  # the sources answer later: the alert's own refresh will say
        out(f"autopilot: the first refresh failed ({err}); continuing")
        return
    for view in views:
        out(f"autopilot: {view.snapshot.service}: {view.decision.headline}")


class _ClusterRef:
    """Just enough of a service config for the session's per-cluster connection."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster


def _signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
