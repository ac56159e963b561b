"""How numbers, times and decisions read on screen (one place, so every pane agrees)."""

from __future__ import annotations

from datetime import datetime, timedelta

from console.model import Action

# Theme variable and CSS class per action: the banner, the badges and the
# timeline colour an action the same way.
SEVERITY = {
    Action.ROLLBACK_NOW: "sev-critical",
    Action.SIGNALS_UNAVAILABLE: "sev-warning",
    Action.INVESTIGATE: "sev-warning",
    Action.FIX_FORWARD: "sev-info",
    Action.HOTFIX: "sev-info",
    Action.WAIT_EXTERNAL: "sev-info",
    Action.HEALTHY: "sev-ok",
}

# Short badge words for the service list, in the runbook's vocabulary.
BADGE = {
    Action.ROLLBACK_NOW: "ROLLBACK NOW",
    Action.SIGNALS_UNAVAILABLE: "NO SIGNALS",
    Action.INVESTIGATE: "INVESTIGATE",
    Action.FIX_FORWARD: "FIX FORWARD",
    Action.HOTFIX: "HOTFIX",
    Action.WAIT_EXTERNAL: "WAIT",
    Action.HEALTHY: "HEALTHY",
}

NO_VALUE = "—"


def rate(fraction: float | None) -> str:
    """An error rate as a percentage: 0.08 -> "8.0 %", 0.001 -> "0.10 %"."""
    if fraction is None:
        return NO_VALUE
    value = fraction * 100
    return f"{value:.1f} %" if value >= 1 else f"{value:.2f} %"


def rate_number(fraction: float | None) -> str:
    """The number part of `rate`, for the large digits."""
    return rate(fraction).removesuffix(" %")


def millis(value: float | None) -> str:
    """A latency in milliseconds: 1987.4 -> "1987 ms", 2.4 -> "2.4 ms"."""
    if value is None:
        return NO_VALUE
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def clock_time(at: datetime | None) -> str:
    """A timestamp as HH:MM:SS UTC (war rooms span time zones; UTC is the runbook's)."""
    return at.strftime("%H:%M:%S") if at else NO_VALUE


def age(at: datetime | None, now: datetime) -> str:
    """How long ago `at` was: "45s", "12m", "3h 5m", "2d 4h"."""
    if at is None:
        return NO_VALUE
    seconds = int((now - at).total_seconds())
    if seconds < 0:
        return "just now"
    if seconds < 60:
        return f"{seconds}s ago"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m ago"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h ago"


def short_age(at: datetime | None, now: datetime) -> str:
    """A compact `age` for columns headed "Age": "45s", "12m", "3h", "14d"."""
    text = age(at, now).removesuffix(" ago")
    # Keep the larger unit only: "3h 5m" -> "3h"; the column stays narrow.
    return text.split(" ")[0]


def countdown(deadline: datetime, now: datetime) -> str:
    """Time left until `deadline` as M:SS, or how long it has passed."""
    seconds = int((deadline - now).total_seconds())
    if seconds < 0:
        minutes, secs = divmod(-seconds, 60)
        return f"overdue by {minutes}:{secs:02d}"
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}:{secs:02d} left"


def lasted(duration: timedelta) -> str:
    """How long something lasted, coarse: "45s", "14m", "1h 5m"."""
    seconds = max(0, int(duration.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def elapsed(since: datetime, now: datetime) -> str:
    """How long since `since`, to the second: "4:05", "1:02:03" (a running clock)."""
    seconds = max(0, int((now - since).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
