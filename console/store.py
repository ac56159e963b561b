"""SQLite persistence of incidents and their append-only timelines.

One file, WAL mode, every write committed before the call returns: the UI
shows only what is stored, so a crash or a closed laptop loses nothing and a
restart rebuilds the incident (`incident.rebuild(id, store.events(id,
newest_first=False))`). One connection shared by the UI's worker threads,
serialised by a lock. Secrets are redacted before anything is written.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterable
from typing import Any

from console import incident
from console.locations import ensure_parent
from console.model import Event
from console.redact import redact, redact_data

SCHEMA_VERSION = 2

_SCHEMA_V1 = """
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    title TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incidents_by_service ON incidents (service, opened_at);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    text TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_incident ON events (incident_id, id);
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'incident events are append-only'); END;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'incident events are append-only'); END;
"""

# The outbox: messages to send, kept until they are sent, so a message that
# failed (Slack down, network gone) is never lost and can be resent later.
_SCHEMA_V2 = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT REFERENCES incidents (id),
    created_at TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error TEXT,
    sent_at TEXT
);
CREATE INDEX outbox_pending ON outbox (sent_at, id);
"""

# Schema version -> the script that brings the previous version to it.
_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}


class StoreError(Exception):
    """The incident database failed; str() is a sentence for the operator."""


@dataclass(frozen=True)
class IncidentRecord:
    """One row of the incidents table."""

    id: str
    service: str
    opened_at: datetime
    closed_at: datetime | None = None
    title: str = ""

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class OutboxEntry:
    """One message in the outbox: what to send where, and how sending went."""

    id: int
    incident_id: str | None
    created_at: datetime
    channel: str  # "Slack"
    kind: str  # a comms.MessageKind value
    label: str  # "Rollback Complete"
    payload: dict[str, Any]  # the request body (Slack webhook JSON)
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.sent_at is None


_OUTBOX_COLUMNS = (
    "id, incident_id, created_at, channel, kind, label, payload, attempts, last_attempt_at, last_error, sent_at"
)


def _utc_text(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("Event times must be timezone-aware (UTC); take them from the console's clock.")
    return at.astimezone(timezone.utc).isoformat()


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _slug(service: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", service.lower()).strip("-") or "service"


class Store:
    """The incident database at `path` (created, with its directory, if missing;
    ":memory:" for a throwaway one)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            if self.path != ":memory:":
                ensure_parent(Path(self.path))
            # Autocommit (isolation_level=None): transactions are explicit, so
            # every write is committed when its call returns.
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0, isolation_level=None)
        except (sqlite3.Error, OSError) as err:
            raise StoreError(
                f"Cannot open the incident database {self.path}: {err}. "
                "Check that its directory is writable, or point the console at another "
                "state directory (XDG_STATE_HOME)."
            ) from err
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as err:
            self._db.close()
            raise StoreError(
                f"Cannot open the incident database {self.path}: {err}. "
                "Check that the file is the console's incident database, or point the console "
                "at another state directory (XDG_STATE_HOME)."
            ) from err

    # --- lifecycle ------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"it was written by a newer console (schema {version}, this one knows {SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction():
                # Read again under the write lock: another process opening the same
                # new database at the same moment may have migrated it already.
                if self._db.execute("PRAGMA user_version").fetchone()[0] >= target:
                    continue
                for statement in _MIGRATIONS[target].split(";\n"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")

    def _transaction(self):
        return _Transaction(self._db)

    def close(self) -> None:
        """Close the database (later calls fail)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_mode(self) -> str:
        """The SQLite journal mode in effect ("wal" for a file, "memory" for ":memory:")."""
        with self._lock:
            return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    # --- incidents ------------------------------------------------------------------

    def open_incident(self, service: str, now: datetime, title: str = "", prefix: str = "INC") -> str:
        """Open an incident for `service` and return its id, e.g.
        "INC-20240117-1445-order-service" (`prefix` is the config's ticket
        prefix). Its first event is INCIDENT_OPENED."""
        with self._lock, self._errors("open an incident"), self._transaction():
            return self._open_incident(service, now, title, prefix)

    def _open_incident(self, service: str, now: datetime, title: str, prefix: str = "INC") -> str:
        """Open an incident inside the caller's transaction."""
        base = f"{prefix}-{now.astimezone(timezone.utc):%Y%m%d-%H%M}-{_slug(service)}"
        title = redact(title)
        opening = incident.opened(service, title)
        incident_id, n = base, 1
        while self._db.execute("SELECT 1 FROM incidents WHERE id = ?", (incident_id,)).fetchone():
            n += 1
            incident_id = f"{base}-{n}"
        self._db.execute(
            "INSERT INTO incidents (id, service, opened_at, title) VALUES (?, ?, ?, ?)",
            (incident_id, service, _utc_text(now), title),
        )
        self._insert_event(incident_id, opening.kind, opening.text, now, "console", opening.data)
        return incident_id

    def version(self) -> tuple[int, int]:
        """Changes since the last read when it differs: this connection's own
        writes (`total_changes`) and any other process's (`PRAGMA data_version`)."""
        with self._lock, self._errors("read the store's version"):
            return self._db.total_changes, self._db.execute("PRAGMA data_version").fetchone()[0]

    def open_incidents(self, services: Iterable[str]) -> dict[str, str]:
        """`open_incident_for` of every service in one query: service -> incident id."""
        wanted = set(services)
        with self._lock, self._errors("look up the open incidents"):
            rows = self._db.execute(
                "SELECT service, id FROM incidents WHERE closed_at IS NULL ORDER BY opened_at ASC, rowid ASC"
            ).fetchall()
        return {service: incident_id for service, incident_id in rows if service in wanted}  # the latest wins

    def open_incident_for(self, service: str) -> str | None:
        """The id of the latest incident of `service` that is not closed, if any."""
        with self._lock, self._errors("look up the open incident"):
            return self._open_incident_id(service)

    def close_incident(self, incident_id: str, at: datetime) -> None:
        """Close the incident (an INCIDENT_CLOSED event records it)."""
        closing = incident.closed()
        with self._lock, self._errors("close the incident"), self._transaction():
            updated = self._db.execute(
                "UPDATE incidents SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
                (_utc_text(at), incident_id),
            ).rowcount
            if updated:
                self._insert_event(incident_id, closing.kind, closing.text, at, "console", closing.data)
            elif not self._exists(incident_id):
                raise StoreError(f"There is no incident {incident_id} in {self.path}.")

    def incident(self, incident_id: str) -> IncidentRecord | None:
        """One incident by id."""
        with self._lock, self._errors("read the incident"):
            row = self._db.execute(
                "SELECT id, service, opened_at, closed_at, title FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
        return _record(row) if row else None

    def incidents(self) -> list[IncidentRecord]:
        """All incidents, newest first."""
        with self._lock, self._errors("list incidents"):
            rows = self._db.execute(
                "SELECT id, service, opened_at, closed_at, title FROM incidents ORDER BY opened_at DESC, rowid DESC"
            ).fetchall()
        return [_record(row) for row in rows]

    def latest_incident(self) -> IncidentRecord | None:
        """The most recently opened incident, open or closed."""
        found = self.incidents()
        return found[0] if found else None

    # --- events ---------------------------------------------------------------------

    def append(
        self,
        incident_id: str,
        kind: str,
        text: str,
        at: datetime,
        actor: str = "console",
        data: dict[str, Any] | None = None,
    ) -> Event:
        """Record one event, committed before returning; returns it as stored
        (secrets redacted)."""
        with self._lock, self._errors("record the event"), self._transaction():
            if not self._exists(incident_id):
                raise StoreError(f"There is no incident {incident_id} in {self.path}; the event was not recorded.")
            return self._insert_event(incident_id, kind, text, at, actor, data)

    def append_if_changed(
        self,
        service: str,
        kind: str,
        text: str,
        at: datetime,
        key: str,
        actor: str = "console",
        data: dict[str, Any] | None = None,
        open_incident: bool = True,
    ) -> tuple[str, Event] | None:
        """Record an event in `service`'s open incident unless the last event of
        the same `kind` there has the same `data[key]` (a verdict that did not
        change). Checked and written in ONE transaction, so consoles racing on
        one store (20 `status` runs at once) record a change once, not once
        each. With no open incident, one is opened first when `open_incident`,
        else nothing is recorded. Returns (incident id, the stored event), or
        None when nothing was recorded."""
        value = (data or {}).get(key)
        with self._lock, self._errors("record the event"), self._transaction():
            incident_id = self._open_incident_id(service)
            if incident_id is None:
                if not open_incident:
                    return None
                incident_id = self._open_incident(service, at, "")
            else:
                last = self._db.execute(
                    "SELECT data FROM events WHERE incident_id = ? AND kind = ? ORDER BY id DESC LIMIT 1",
                    (incident_id, kind),
                ).fetchone()
                if last is not None and json.loads(last[0]).get(key) == value:
                    return None
            return incident_id, self._insert_event(incident_id, kind, text, at, actor, data)

    def ensure_open_incident(self, service: str, now: datetime, title: str = "", prefix: str = "INC") -> str:
        """The open incident of `service`, opened now if there is none, in one
        transaction (two consoles racing open one incident, not two); `prefix`
        is the config's ticket prefix."""
        with self._lock, self._errors("open an incident"), self._transaction():
            incident_id = self._open_incident_id(service)
            return incident_id if incident_id is not None else self._open_incident(service, now, title, prefix)

    def events(self, incident_id: str, newest_first: bool = True, limit: int | None = None) -> list[Event]:
        """The incident's timeline (the last `limit` events when given)."""
        inner = "SELECT id, at, kind, text, actor, data FROM events WHERE incident_id = ? ORDER BY id DESC"
        params: tuple[Any, ...] = (incident_id,)
        if limit is not None:
            inner += " LIMIT ?"
            params += (limit,)
        # The newest `limit` events, then put in the order asked for.
        sql = f"SELECT at, kind, text, actor, data FROM ({inner}) ORDER BY id {'DESC' if newest_first else 'ASC'}"
        with self._lock, self._errors("read the timeline"):
            rows = self._db.execute(sql, params).fetchall()
        return [
            Event(at=_time(at), kind=kind, text=text, actor=actor, data=incident.pairs(json.loads(data)))
            for at, kind, text, actor, data in rows
        ]

    # --- outbox -------------------------------------------------------------------------

    def outbox_add(
        self,
        incident_id: str | None,
        kind: str,
        label: str,
        payload: dict[str, Any],
        at: datetime,
        channel: str = "Slack",
    ) -> OutboxEntry:
        """Keep a message to send (before sending it, so a crash mid-send loses
        nothing); returns the entry as stored (secrets redacted)."""
        clean = redact_data(json.loads(json.dumps(payload)))
        with self._lock, self._errors("keep the message in the outbox"), self._transaction():
            if incident_id is not None and not self._exists(incident_id):
                raise StoreError(f"There is no incident {incident_id} in {self.path}; the message was not kept.")
            cursor = self._db.execute(
                "INSERT INTO outbox (incident_id, created_at, channel, kind, label, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (incident_id, _utc_text(at), channel, kind, redact(label), json.dumps(clean, ensure_ascii=False)),
            )
            return self._outbox_row(cursor.lastrowid)

    def outbox_pending(self, incident_id: str | None = None) -> list[OutboxEntry]:
        """Messages not sent yet, oldest first (of one incident when given)."""
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE sent_at IS NULL"
        params: tuple[Any, ...] = ()
        if incident_id is not None:
            sql += " AND incident_id = ?"
            params = (incident_id,)
        with self._lock, self._errors("read the outbox"):
            rows = self._db.execute(sql + " ORDER BY id", params).fetchall()
        return [_outbox_entry(row) for row in rows]

    def outbox_entry(self, entry_id: int) -> OutboxEntry | None:
        """One outbox entry by id, sent or not."""
        with self._lock, self._errors("read the outbox"):
            return self._outbox_row(entry_id)

    def outbox_mark_sent(self, entry_id: int, at: datetime) -> OutboxEntry:
        """The message went out (counts as one more attempt)."""
        return self._outbox_attempt(entry_id, at, None)

    def outbox_mark_failed(self, entry_id: int, at: datetime, error: str) -> OutboxEntry:
        """A send failed; the message stays pending with the error sentence."""
        return self._outbox_attempt(entry_id, at, error)

    def _outbox_attempt(self, entry_id: int, at: datetime, error: str | None) -> OutboxEntry:
        stamp = _utc_text(at)
        with self._lock, self._errors("update the outbox"), self._transaction():
            updated = self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, last_error = ?, "
                "sent_at = CASE WHEN ? IS NULL THEN COALESCE(sent_at, ?) ELSE sent_at END WHERE id = ?",
                (stamp, None if error is None else redact(error), error, stamp, entry_id),
            ).rowcount
            if not updated:
                raise StoreError(f"There is no message {entry_id} in the outbox of {self.path}.")
            return self._outbox_row(entry_id)

    def _outbox_row(self, entry_id: int | None) -> OutboxEntry | None:
        row = self._db.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        return _outbox_entry(row) if row else None

    # --- internals ---------------------------------------------------------------------

    def _open_incident_id(self, service: str) -> str | None:
        """The latest incident of `service` that is not closed, inside the caller's lock."""
        row = self._db.execute(
            "SELECT id FROM incidents WHERE service = ? AND closed_at IS NULL "
            "ORDER BY opened_at DESC, rowid DESC LIMIT 1",
            (service,),
        ).fetchone()
        return row[0] if row else None

    def _exists(self, incident_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM incidents WHERE id = ?", (incident_id,)).fetchone() is not None

    def _insert_event(
        self, incident_id: str, kind: str, text: str, at: datetime, actor: str, data: dict[str, Any] | None
    ) -> Event:
        clean_text = redact(text)
        clean_data = redact_data(json.loads(incident.to_json(data or {})))
        stored_at = _utc_text(at)
        self._db.execute(
            "INSERT INTO events (incident_id, at, kind, actor, text, data) VALUES (?, ?, ?, ?, ?, ?)",
            (incident_id, stored_at, kind, redact(actor), clean_text, json.dumps(clean_data, sort_keys=True)),
        )
        return Event(
            at=_time(stored_at), kind=kind, text=clean_text, actor=redact(actor), data=incident.pairs(clean_data)
        )

    def _errors(self, doing: str) -> _Errors:
        return _Errors(doing, self.path)


def _record(row: tuple) -> IncidentRecord:
    incident_id, service, opened_at, closed_at, title = row
    return IncidentRecord(incident_id, service, _time(opened_at), _time(closed_at), title)


def _outbox_entry(row: tuple) -> OutboxEntry:
    entry_id, incident_id, created_at, channel, kind, label, payload, attempts, last_at, last_error, sent_at = row
    return OutboxEntry(
        id=entry_id,
        incident_id=incident_id,
        created_at=_time(created_at),
        channel=channel,
        kind=kind,
        label=label,
        payload=json.loads(payload),
        attempts=attempts,
        last_attempt_at=_time(last_at),
        last_error=last_error,
        sent_at=_time(sent_at),
    )


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


class _Errors:
    """Turns SQLite failures into operator sentences."""

    def __init__(self, doing: str, path: str) -> None:
        self._doing, self._path = doing, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and isinstance(exc, sqlite3.Error):
            raise StoreError(
                f"Could not {self._doing} in the incident database {self._path}: {exc}. "
                "Check the disk has space and the file is writable; the console keeps running."
            ) from exc
