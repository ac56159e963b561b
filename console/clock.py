"""Clocks. Every timer in the console reads one of these, never the system
time directly, so drills can speed time up and tests can freeze it."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


def parse_rfc3339(value: object) -> datetime | None:
    """An RFC 3339 timestamp (an API's `2026-12-04T14:21:00Z`) as an aware
    datetime; None when it is absent or not a timestamp (a time without a zone is UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ScaledClock:
    """Simulated time that starts at `start` and runs `speed` times faster than
    the wall clock (the drill world's clock)."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._start = start
        self._speed = speed
        self._origin = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._origin) * self._speed + self._offset
        return self._start + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        """Jump forward in simulated time (tests and drills)."""
        with self._lock:
            self._offset += seconds

    def set_speed(self, speed: float) -> None:
        """Run `speed` times faster from now on (0 pauses); the time so far is kept."""
        if speed < 0:
            raise ValueError("speed must not be negative")
        with self._lock:
            now = time.monotonic()
            self._offset += (now - self._origin) * self._speed
            self._origin = now
            self._speed = speed


class FrozenClock:
    """A clock that moves only when told to (tests, snapshots)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        self._now = at
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


def rate(clock: Clock) -> float:
    """How many seconds `clock` advances per wall-clock second: 1 for the
    system clock, a scaled clock's speed (0 while a drill is paused), 0 for a
    frozen clock. A process that cannot share the clock object (the refresh
    process) follows it from one reading and this rate."""
    if isinstance(clock, FrozenClock):
        return 0.0
    return float(getattr(clock, "speed", 1.0))


class RelayedClock:
    """Another process's clock, followed from one reading of it (`now` at the
    monotonic moment `at`) and its rate; `follow` takes a newer reading.
    CLOCK_MONOTONIC is system-wide, so `at` from the other process is comparable."""

    def __init__(self, now: datetime, rate: float, at: float) -> None:
        self._lock = threading.Lock()
        self.follow(now, rate, at)

    def follow(self, now: datetime, rate: float, at: float) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        with self._lock:
            self._now, self._rate, self._at = now, rate, at

    def now(self) -> datetime:
        with self._lock:
            return self._now + timedelta(seconds=(time.monotonic() - self._at) * self._rate)
