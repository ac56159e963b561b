"""Leader election for two autopilots (two replicas): the one holding the
Kubernetes Lease `rollback-console-autopilot` acts; the other answers 503 to
Alertmanager (which retries) and takes over when the leader stops renewing.

It reuses the console's rollback lease (`console.platforms.lease`): the same
coordination.k8s.io/v1 Lease, created atomically, written with the
resourceVersion read, taken over only once expired.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

from console.clock import Clock, SystemClock
from console.platforms.base import PlatformError
from console.platforms.lease import RollbackLease

LEASE_SERVICE = "autopilot"
"""The lease is named after this pseudo-service: `rollback-console-autopilot`."""


def identity(operator: str) -> str:
    """Who holds the lease: `autopilot@POD-or-host:pid`."""
    return f"{operator}@{os.environ.get('HOSTNAME') or socket.gethostname()}:{os.getpid()}"


class Leadership:
    """Keeps trying to hold the lease; `is_leader()` is true while it is held
    and was renewed within its duration. `on_elected` runs on each win."""

    def __init__(self, connection, namespace: str, holder: str, lease_seconds: float,
                 on_elected: Callable[[], None] = lambda: None, clock: Clock | None = None,
                 out: Callable[[str], None] = print) -> None:
        self.clock = clock or SystemClock()
        self.lease = RollbackLease(connection, namespace, LEASE_SERVICE, holder, ttl=lease_seconds, clock=self.clock)
        self.holder = holder
        self.on_elected = on_elected
        self.out = out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False

    def is_leader(self) -> bool:
        renewed = self.lease._renewed_at
        return (self._leading and self.lease.held and renewed is not None
                and (self.clock.now() - renewed).total_seconds() < self.lease.ttl_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="autopilot-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, and release the lease so the standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.lease.release()
        except PlatformError:
            pass  # it expires on its own

    def _loop(self) -> None:
        interval = max(0.5, self.lease.ttl_seconds / 3)
        while not self._stop.is_set():
            self._round()
            self._stop.wait(interval)

    def _round(self) -> None:
        try:
            if self.lease.held:
                self.lease.renew()
            else:
                self.lease.acquire()
                if not self._leading:
                    self._leading = True
                    self.out(f"autopilot: leading (lease {self.lease.ref}, holder {self.holder})")
                    self.on_elected()
        except PlatformError as err:
            if self._leading and not self.lease.held:
                self._leading = False
                self.out(f"autopilot: standing by: {err}")
