"""The autopilot's journal, in the incident store's own SQLite file: every
alert it received (keyed by fingerprint and `startsAt`, so a re-sent alert is
known again), the automatic rollbacks it started (for the cooldown and the
blast radius), and the kill switch the TUI's key sets for everyone using the
store. The timeline events people read are written through the session; this
is the bookkeeping that makes the autopilot idempotent across restarts.

The claim of an alert is one INSERT on a primary key: two autopilots on one
store cannot both claim the same alert.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from console.autopilot.policy import PastRollback

_SCHEMA = """
CREATE TABLE IF NOT EXISTS autopilot_alerts (
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    alertname TEXT NOT NULL,
    service TEXT,
    received_at TEXT NOT NULL,
    done_at TEXT,
    outcome TEXT,
    resolved_at TEXT,
    PRIMARY KEY (fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS autopilot_rollbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    at TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS autopilot_switch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    paused INTEGER NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


def _text(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat()


@dataclass(frozen=True)
class Pending:
    """An alert claimed but not finished (the autopilot stopped while on it)."""

    fingerprint: str
    starts_at: str
    alertname: str
    service: str


@dataclass(frozen=True)
class Switch:
    """The kill switch as the store records it."""

    paused: bool
    by: str
    at: datetime
    reason: str


def read_switch(path: str | Path) -> Switch | None:
    """The kill switch as the store at `path` records it, read-only (None:
    never set, or no such store): for the console's panes, which must not
    create the autopilot's tables in a store it only views."""
    import urllib.parse

    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=5.0)
    except sqlite3.Error:
        return None
    try:
        row = db.execute("SELECT paused, by, at, reason FROM autopilot_switch WHERE id = 1").fetchone()
    except sqlite3.Error:  # no such table: nobody ever set it
        return None
    finally:
        db.close()
    return Switch(bool(row[0]), row[1], datetime.fromisoformat(row[2]), row[3]) if row else None


class Journal:
    """The autopilot tables of the store at `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def claim(self, fingerprint: str, starts_at: str, alertname: str, service: str | None, now: datetime) -> bool:
        """Record a firing alert; False when it was recorded before (a re-send)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO autopilot_alerts (fingerprint, starts_at, alertname, service, received_at) "
                "VALUES (?, ?, ?, ?, ?)", (fingerprint, starts_at, alertname, service, _text(now)))
            return cursor.rowcount == 1

    def finish(self, fingerprint: str, starts_at: str, outcome: str, now: datetime) -> None:
        with self._lock:
            self._db.execute("UPDATE autopilot_alerts SET done_at = ?, outcome = ? WHERE fingerprint = ? AND starts_at = ?",
                             (_text(now), outcome, fingerprint, starts_at))

    def resolve(self, fingerprint: str, starts_at: str, alertname: str, service: str | None, now: datetime) -> bool:
        """Mark an alert resolved; False when it was marked before (a re-sent resolution)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO autopilot_alerts (fingerprint, starts_at, alertname, service, received_at, "
                "done_at, outcome) VALUES (?, ?, ?, ?, ?, ?, 'resolved before it was seen firing')",
                (fingerprint, starts_at, alertname, service, _text(now), _text(now)))
            cursor = self._db.execute(
                "UPDATE autopilot_alerts SET resolved_at = ? WHERE fingerprint = ? AND starts_at = ? "
                "AND resolved_at IS NULL", (_text(now), fingerprint, starts_at))
            return cursor.rowcount == 1

    def pending(self) -> list[Pending]:
        """Alerts claimed and not finished, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT fingerprint, starts_at, alertname, service FROM autopilot_alerts "
                "WHERE done_at IS NULL AND service IS NOT NULL ORDER BY received_at").fetchall()
        return [Pending(*row) for row in rows]

    def outcome(self, fingerprint: str, starts_at: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT outcome FROM autopilot_alerts WHERE fingerprint = ? AND starts_at = ?",
                                   (fingerprint, starts_at)).fetchone()
        return row[0] if row else None

    def rolled_back(self, service: str, fingerprint: str, starts_at: str, now: datetime) -> None:
        """An automatic rollback of `service` starts now (before the change is sent)."""
        with self._lock:
            self._db.execute("INSERT INTO autopilot_rollbacks (service, at, fingerprint, starts_at) VALUES (?, ?, ?, ?)",
                             (service, _text(now), fingerprint, starts_at))

    def withdraw(self, fingerprint: str, starts_at: str) -> None:
        """The rollback this alert started never reached the platform: it no longer counts."""
        with self._lock:
            self._db.execute("DELETE FROM autopilot_rollbacks WHERE fingerprint = ? AND starts_at = ?",
                             (fingerprint, starts_at))

    def past_rollbacks(self, besides: tuple[str, str] | None = None) -> list[PastRollback]:
        """The automatic rollbacks started, oldest first; `besides` (fingerprint,
        startsAt) leaves out the one that alert started (resuming it)."""
        fingerprint, starts_at = besides or ("", "")
        with self._lock:
            rows = self._db.execute("SELECT service, at FROM autopilot_rollbacks WHERE NOT (fingerprint = ? AND "
                                    "starts_at = ?) ORDER BY id", (fingerprint, starts_at)).fetchall()
        return [PastRollback(service, datetime.fromisoformat(at)) for service, at in rows]

    def switch(self) -> Switch | None:
        """The kill switch as last set (None: never set)."""
        with self._lock:
            row = self._db.execute("SELECT paused, by, at, reason FROM autopilot_switch WHERE id = 1").fetchone()
        return Switch(bool(row[0]), row[1], datetime.fromisoformat(row[2]), row[3]) if row else None

    def set_paused(self, paused: bool, by: str, reason: str, now: datetime) -> Switch:
        """Pause (or resume) the autopilot for everyone using this store."""
        with self._lock:
            self._db.execute(
                "INSERT INTO autopilot_switch (id, paused, by, at, reason) VALUES (1, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET paused = excluded.paused, by = excluded.by, at = excluded.at, "
                "reason = excluded.reason", (int(paused), by, _text(now), reason))
        return Switch(paused, by, now, reason)
