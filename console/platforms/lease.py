"""One rollback at a time per service, across every console in the war room.

Before a console changes a service it takes a `coordination.k8s.io/v1` Lease
named after the service (`rollback-console-<service>`) in the service's
namespace: holder `user@host`, a time to live, renewed while the change runs
and deleted after it. A second console finds the lease held, names who holds
it and since when, and does not touch the service. A lease whose holder
stopped renewing it (a crashed console, a closed laptop) expires after its TTL
and may be taken over.

Every write carries the resourceVersion the console read, so two consoles
racing for the same lease cannot both win: the apiserver refuses the slower
one with 409 Conflict.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from console.clock import Clock, SystemClock
from console.platforms.base import Conflict, LeaseHeld, NotFound, PlatformError
from console.platforms.base import parse_time  # a MicroTime is an RFC 3339 time

DEFAULT_TTL_SECONDS = 60.0
"""How long a lease outlives its holder's last renewal."""
RENEW_FRACTION = 1 / 3
"""A held lease is renewed when this fraction of its TTL has passed since the last renewal."""
RENEW_POLL_SECONDS = 0.1
"""How often (wall seconds) the renewer looks at the clock; cheap, it only sends when a renewal is due."""
LEASE_PREFIX = "rollback-console-"
SESSION_ANNOTATION = "rollback-console.io/session"
"""Tells two consoles of the same user on the same host apart (their holderIdentity is equal)."""
SERVICE_ANNOTATION = "rollback-console.io/service"
MANAGED_BY = {"app.kubernetes.io/managed-by": "rollback-console"}
_API = "coordination.k8s.io/v1"


def lease_name(service: str) -> str:
    """`rollback-console-<service>`, made a valid object name."""
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", service.lower()).strip("-.") or "service"
    return (LEASE_PREFIX + cleaned)[:253]


def format_micro_time(at: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 UTC with microseconds."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a service's rollback lease: for the panes and for the refusal."""

    service: str
    holder: str
    # "shop/rollback-console-order-service"
    lease: str
    acquired: datetime | None
    renewed: datetime | None
    ttl_seconds: int
    # The holder stopped renewing: the lease may be taken over.
    expired: bool = False
    # When this console read the lease (None: unknown, the sentence then says less).
    seen_at: datetime | None = None

    @property
    def expires(self) -> datetime | None:
        """When the lease lapses unless it is renewed."""
        since = self.renewed or self.acquired
        return since + timedelta(seconds=self.ttl_seconds) if since else None

    @property
    def silent_for(self) -> float | None:
        """Seconds since the holder last renewed (or took) the lease, when known."""
        since = self.renewed or self.acquired
        if since is None or self.seen_at is None:
            return None
        return max(0.0, (self.seen_at - since).total_seconds())

    @property
    def presumed_gone(self) -> bool:
        """The holder missed two renewals in a row: its console has most likely
        stopped (crashed, closed laptop), though the lease has not expired yet."""
        silent = self.silent_for
        return silent is not None and silent > 2 * RENEW_FRACTION * self.ttl_seconds + 1

    def sentence(self) -> str:
        """Why this console does not roll the service back now: who, since when,
        when the holder last renewed, when the lease expires, and whether the
        holder is presumed gone."""
        since = f" since {self.acquired:%H:%M:%S} UTC" if self.acquired else ""
        renewed = self.renewed or self.acquired
        expires = self.expires
        head = f"{self.service} is being rolled back by {self.holder}{since} (lease {self.lease}"
        if renewed is not None and expires is not None:
            head += f"; last renewed {renewed:%H:%M:%S} UTC, expires {expires:%H:%M:%S} UTC unless renewed"
        head += ")"
        if self.presumed_gone and expires is not None:
            left = (expires - self.seen_at).total_seconds() if self.seen_at else 0.0
            name = self.lease.replace("/", " ", 1).split(" ")
            return (
                f"{head}, but the holder has not renewed it for {self.silent_for:.0f} s and is presumed gone "
                f"(a stopped console); the lease expires in {max(0.0, left):.0f} s, then it can be taken over. "
                f"To take over sooner, confirm with {self.holder} and delete it: "
                f"kubectl delete lease -n {name[0]} {name[-1]}"
            )
        return f"{head}; wait for it or coordinate in the war room"


class RollbackLease:
    """A service's rollback lease, held by one console (`holder` is `user@host`).

    Use as a context manager: entering acquires (Conflict if someone else holds
    it), a background thread renews it while the block runs, leaving deletes it.
    `lost` is set (a sentence) if a renewal found the lease taken by someone else.
    """

    def __init__(
        self,
        connection: Any,
        namespace: str,
        service: str,
        holder: str,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self.connection = connection
        self.namespace = namespace
        self.service = service
        self.holder = holder
        self.ttl_seconds = max(1, round(ttl))
        self.name = lease_name(service)
        self.lost: str | None = None
        self._clock: Clock = clock or SystemClock()
        self._token = uuid.uuid4().hex
        self._version: str | None = None
        self._lease: dict | None = None
        self._renewed_at: datetime | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def held(self) -> bool:
        """This console holds the lease (acquired and not released nor lost)."""
        return self._version is not None and self.lost is None

    def _path(self, name: str | None = None) -> str:
        base = f"/apis/{_API}/namespaces/{self.namespace}/leases"
        return f"{base}/{name}" if name else base

    def _send(self, method: str, verb: str, body: Any = None, name: str | None = None) -> dict:
        return self.connection.request(
            method,
            self._path(name),
            verb=verb,
            resource="leases",
            name=self.name,
            namespace=self.namespace,
            body=body,
            content_type="application/json" if body is not None else None,
        )

    # --- reading -------------------------------------------------------------

    def _read(self) -> dict | None:
        try:
            return self._send("GET", "get", name=self.name)
        except NotFound:
            return None

    def _info(self, lease: dict, now: datetime) -> LeaseHolder | None:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if not holder:
            return None
        ttl = int(spec.get("leaseDurationSeconds") or self.ttl_seconds)
        info = LeaseHolder(
            service=self.service,
            holder=holder,
            lease=self.ref,
            acquired=parse_time(spec.get("acquireTime")),
            renewed=parse_time(spec.get("renewTime")),
            ttl_seconds=ttl,
            seen_at=now,
        )
        expires = info.expires
        return info if expires is None or expires > now else replace(info, expired=True)

    def current(self) -> LeaseHolder | None:
        """Who holds the lease now (expired holders are marked so), None when nobody does."""
        lease = self._read()
        return self._info(lease, self._clock.now()) if lease else None

    def _mine(self, lease: dict) -> bool:
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        return (
            (lease.get("spec") or {}).get("holderIdentity") == self.holder
            and annotations.get(SESSION_ANNOTATION) == self._token
        )

    # --- writing -------------------------------------------------------------

    def _body(self, now: datetime, base: dict | None, acquired: str, transitions: int) -> dict:
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {SESSION_ANNOTATION: self._token, SERVICE_ANNOTATION: self.service},
        }
        if base is not None:
            # The resourceVersion read is the precondition: a concurrent writer wins, we get 409.
            metadata["resourceVersion"] = base["metadata"]["resourceVersion"]
        return {
            "apiVersion": _API,
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.ttl_seconds,
                "acquireTime": acquired,
                "renewTime": format_micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    def acquire(self) -> None:
        """Take the lease: create it, or take over one that is free or expired.
        Raises Conflict (the holder's sentence) when someone else holds it."""
        with self._lock:
            now = self._clock.now()
            # Create first: nobody holds the lease almost always, and the create is
            # atomic on the server (AlreadyExists), so a read before it is one
            # round trip more between the operator's confirmation and the change.
            try:
                created = self._send("POST", "create", self._body(now, None, format_micro_time(now), 0))
            except Conflict:  # AlreadyExists: held, expired, or ours from an earlier run
                pass
            else:
                self._took(created, now)
                return
            lease = self._read()
            if lease is None:  # released between our create and our read
                raise self._refusal()
            spec = lease.get("spec") or {}
            info = self._info(lease, now)
            if not self._mine(lease) and info is not None and not info.expired:
                raise LeaseHeld(info.sentence())
            transitions = int(spec.get("leaseTransitions") or 0)
            if self._mine(lease):
                acquired = spec.get("acquireTime") or format_micro_time(now)
            else:
                acquired, transitions = format_micro_time(now), transitions + 1
            try:
                taken = self._send("PUT", "update", self._body(now, lease, acquired, transitions), name=self.name)
            except (Conflict, NotFound):  # changed or deleted since we read it: someone raced us
                raise self._refusal() from None
            self._took(taken, now)

    def _took(self, lease: dict, now: datetime) -> None:
        self._lease = lease
        self._version = lease["metadata"]["resourceVersion"]
        self._renewed_at = now
        self.lost = None

    def _refusal(self) -> Conflict:
        info = self.current()
        if info is not None:
            return LeaseHeld(info.sentence())
        return Conflict(
            f"Another console changed the rollback lease {self.ref} of {self.service} at the same "
            "moment; look at who is rolling it back and try again."
        )

    def renew(self) -> None:
        """Extend the lease by its TTL from now; Conflict (and `lost` set) if it was taken."""
        with self._lock:
            if self._lease is None:
                raise PlatformError(f"The rollback lease {self.ref} is not held by this console; acquire it first.")
            now = self._clock.now()
            spec = self._lease.get("spec") or {}
            body = self._body(now, self._lease, spec.get("acquireTime"), int(spec.get("leaseTransitions") or 0))
            try:
                renewed = self._send("PUT", "update", body, name=self.name)
            except (Conflict, NotFound):
                current = self._read()
                if current is not None and self._mine(current):
                    self._lease = current  # changed by a metadata-only writer: try again next round
                    raise PlatformError(f"The rollback lease {self.ref} changed while renewing it; retrying.") from None
                refusal = self._info(current, now) if current else None
                self.lost = (
                    f"The rollback lease {self.ref} was taken over"
                    + (f" by {refusal.holder}" if refusal else "")
                    + " while this console was rolling back; check what the other console did."
                )
                self._lease = None
                self._version = None
                raise Conflict(self.lost) from None
            self._took(renewed, now)

    def release(self) -> None:
        """Delete the lease if this console still holds it (never someone else's)."""
        with self._lock:
            if self._version is None:
                return
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": self._version}}
            try:
                self._send("DELETE", "delete", body, name=self.name)
            except (Conflict, NotFound):
                pass  # taken over or already gone: not ours to delete
            finally:
                self._lease = None
                self._version = None

    # --- held for the duration of a block ------------------------------------

    def _renew_loop(self) -> None:
        interval = self.ttl_seconds * RENEW_FRACTION
        while not self._stop.wait(RENEW_POLL_SECONDS):
            renewed_at = self._renewed_at
            if renewed_at is None or (self._clock.now() - renewed_at).total_seconds() < interval:
                continue
            try:
                self.renew()
            except Conflict:
                return  # lost: `lost` says so; nothing more to renew
            except PlatformError:
                continue  # the API hiccuped: try again on the next round, the TTL leaves room

    def renew_if_due(self) -> None:
        """Renew now if a renewal is due (called between progress steps too)."""
        renewed_at = self._renewed_at
        if self.held and renewed_at is not None and (
            (self._clock.now() - renewed_at).total_seconds() >= self.ttl_seconds * RENEW_FRACTION
        ):
            try:
                self.renew()
            except Conflict:
                pass  # `lost` says so
            except PlatformError:
                pass  # the background renewer retries

    def __enter__(self) -> RollbackLease:
        self.acquire()
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        try:
            self.release()
        except PlatformError:
            pass  # unreachable API: the lease expires on its own after its TTL


# -- the autopilot's kill switch ------------------------------------------------

PAUSE_LEASE = "rollback-console-autopilot-paused"
"""The Lease whose presence in a service's namespace pauses every autopilot for that service."""
PAUSED_AT_ANNOTATION = "rollback-console.io/paused-at"
REASON_ANNOTATION = "rollback-console.io/reason"


@dataclass(frozen=True)
class ClusterPause:
    """The kill switch as a namespace's Lease records it."""

    # "shop/rollback-console-autopilot-paused"
    lease: str
    by: str
    at: datetime | None
    reason: str

    def sentence(self, also_in_store: bool = False) -> str:
        """Who paused, when and why, and where the pause is written (`also_in_store`:
        the console's incident store holds the same pause, the A key writes both)."""
        when = f" at {self.at:%H:%M:%S} UTC" if self.at else ""
        why = f": {self.reason}" if self.reason else ""
        where = "incident store and Lease" if also_in_store else "Lease"
        return f"paused by {self.by or 'someone'}{when}{why} ({where} {self.lease})"


class PauseLease:
    """The autopilot's kill switch as a Lease in one namespace of one cluster
    (console.autopilot.switch: while it exists, no autopilot rolls back a
    service of that namespace)."""

    def __init__(self, connection, namespace: str) -> None:
        self.connection = connection
        self.namespace = namespace

    @classmethod
    def of(cls, platform) -> PauseLease:
        """The one in a Leased platform's namespace, on its connection."""
        lease = platform.rollback_lease("autopilot")  # for its connection and namespace only; never acquired
        return cls(lease.connection, lease.namespace)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{PAUSE_LEASE}"

    def _send(self, method: str, verb: str, body: dict | None = None, name: str | None = PAUSE_LEASE) -> dict:
        path = f"/apis/{_API}/namespaces/{self.namespace}/leases" + (f"/{name}" if name else "")
        return self.connection.request(method, path, verb=verb, resource="leases", name=PAUSE_LEASE,
                                       namespace=self.namespace, body=body,
                                       content_type="application/json" if body is not None else None)

    def read(self) -> ClusterPause | None:
        """The pause recorded here, None when there is none. PlatformError when it cannot be read."""
        try:
            lease = self._send("GET", "get")
        except NotFound:
            return None
        if not isinstance(lease, dict):
            raise PlatformError(f"The Kubernetes API answered the Lease {self.ref} with something that is not one.")
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        return ClusterPause(self.ref, str((lease.get("spec") or {}).get("holderIdentity") or ""),
                            parse_time(annotations.get(PAUSED_AT_ANNOTATION)),
                            str(annotations.get(REASON_ANNOTATION) or ""))

    def pause(self, by: str, reason: str, now: datetime) -> None:
        """Create the Lease (one already there, someone else's pause, is left as it is)."""
        body = {
            "apiVersion": _API,
            "kind": "Lease",
            "metadata": {"name": PAUSE_LEASE, "namespace": self.namespace, "labels": dict(MANAGED_BY),
                         "annotations": {PAUSED_AT_ANNOTATION: format_micro_time(now), REASON_ANNOTATION: reason}},
            "spec": {"holderIdentity": by},
        }
        try:
            self._send("POST", "create", body, name=None)
        except Conflict:  # AlreadyExists: paused already
            pass

    def resume(self) -> None:
        """Delete the Lease (gone already is fine)."""
        try:
            self._send("DELETE", "delete", {"kind": "DeleteOptions", "apiVersion": "v1"})
        except NotFound:
            pass


# A wrong-shaped answer is a sentence naming the API, never a traceback.
from console.platforms.base import shape_checked as _shape_checked  # noqa: E402

for _method in ('current', 'acquire', 'renew', 'release'):
    setattr(RollbackLease, _method, _shape_checked("Kubernetes API", getattr(RollbackLease, _method)))
for _method in ('read', 'pause', 'resume'):
    setattr(PauseLease, _method, _shape_checked("Kubernetes API", getattr(PauseLease, _method)))
del _method
