"""Alertmanager's webhook payload (version 4), parsed. Pure: no I/O.

Alertmanager POSTs one JSON object per notification:

    {"version": "4", "status": "firing", "receiver": "...", "groupKey": "...",
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
                 "startsAt": "RFC 3339", "endsAt": "RFC 3339", "fingerprint": "hex"}, ...]}

`parse(body)` turns the raw bytes into a `Notification` or raises
`PayloadError` with one sentence saying what is wrong; it never raises
anything else, whatever the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

VERSION = "4"
STATUSES = ("firing", "resolved")
MAX_ALERTS = 1000
"""More alerts than this in one notification is not Alertmanager talking to us."""


class PayloadError(ValueError):
    """The body is not an Alertmanager v4 notification; str() says why."""


@dataclass(frozen=True)
class Alert:
    """One alert of a notification."""

    status: str
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    starts_at: datetime
    fingerprint: str
    ends_at: datetime | None = None

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)

    @property
    def name(self) -> str:
        return self.label("alertname") or "alert"

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def key(self) -> tuple[str, str]:
        """What makes an alert the same alert again: its fingerprint and when it started."""
        return self.fingerprint, self.starts_at.astimezone(timezone.utc).isoformat()


@dataclass(frozen=True)
class Notification:
    status: str
    receiver: str
    alerts: tuple[Alert, ...]


def _text_map(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object of strings.")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise PayloadError(f"{where} must map strings to strings.")
    return tuple(sorted(value.items()))


def parse_time(value: object, where: str) -> datetime:
    """An RFC 3339 time as Alertmanager writes it (nanoseconds allowed), in UTC."""
    if not isinstance(value, str) or not 10 <= len(value) <= 64:
        raise PayloadError(f"{where} must be an RFC 3339 time.")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python reads at most microseconds: cut the fraction to six digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + (rest[:digits][:6].ljust(6, "0") if digits else "0") + rest[digits:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{where} must be an RFC 3339 time, not {value[:40]!r}.") from None
    if parsed.tzinfo is None:
        raise PayloadError(f"{where} must carry a time zone (RFC 3339).")
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise PayloadError(f"{where} is out of range.") from None


def _alert(value: object, index: int) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object.")
    status = value.get("status")
    if status not in STATUSES:
        raise PayloadError(f"{where}.status must be firing or resolved.")
    fingerprint = value.get("fingerprint")
    if not isinstance(fingerprint, str) or not 1 <= len(fingerprint) <= 128:
        raise PayloadError(f"{where}.fingerprint must be a non-empty string.")
    ends = value.get("endsAt")
    ends_at = None
    # Alertmanager writes the zero time for "not ended".
    if isinstance(ends, str) and not ends.startswith("0001-01-01"):
        ends_at = parse_time(ends, f"{where}.endsAt")
    return Alert(
        status=status,
        labels=_text_map(value.get("labels"), f"{where}.labels"),
        annotations=_text_map(value.get("annotations", {}), f"{where}.annotations"),
        starts_at=parse_time(value.get("startsAt"), f"{where}.startsAt"),
        fingerprint=fingerprint,
        ends_at=ends_at,
    )


def parse(body: bytes) -> Notification:
    """The notification in `body`, or PayloadError saying what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise PayloadError("The body is not JSON; send Alertmanager's webhook payload.") from None
    if not isinstance(data, dict):
        raise PayloadError("The body must be a JSON object (Alertmanager's webhook payload).")
    if data.get("version") != VERSION:
        raise PayloadError(f"Only payload version {VERSION} is understood (Alertmanager's webhook_config).")
    status = data.get("status")
    if status not in STATUSES:
        raise PayloadError("status must be firing or resolved.")
    receiver = data.get("receiver", "")
    if not isinstance(receiver, str):
        raise PayloadError("receiver must be a string.")
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise PayloadError("alerts must be a non-empty list.")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"At most {MAX_ALERTS} alerts per notification are accepted.")
    return Notification(status, receiver, tuple(_alert(a, i) for i, a in enumerate(alerts)))
