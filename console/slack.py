"""Sending the runbook's messages to a Slack incoming webhook.

`SlackNotifier.send()` posts one JSON body, retrying with exponential backoff
on what may pass (5xx, 429, timeouts, connection errors), and never raises: it
returns a `SendResult` whose `error` is an operator sentence. The webhook URL
is the credential (whoever has it can post to the channel), so it appears in
no result, log line, exception text or repr.

`deliver()` and `resend_pending()` tie it to the store's outbox and the
incident timeline: a message is kept in the outbox before it is sent and
stays there until Slack accepts it, so a failure never loses it.

Synchronous (httpx.Client): the UI calls it from a thread worker.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from console import incident
from console.clock import Clock
from console.comms import Message, slack_payload
from console.redact import MASK, redact
from console.store import OutboxEntry, Store

log = logging.getLogger(__name__)

CHANNEL = "Slack"

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ANSWER_BYTES = 64 * 1024
"""Of Slack's answer, at most this much is read (its error text is a few words)."""


class _Deadline:
    """A network backend for httpx that bounds a whole attempt, not just each
    read: every read and write gets at most the time left, so a server that
    trickles one byte a second is cut at the deadline (httpx's own timeouts
    are per read)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.until = float("inf")

    def start(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    def left(self, timeout: float | None) -> float:
        import httpcore

        remaining = self.until - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the attempt's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)

    def connect_tcp(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return _DeadlineStream(self._backend.connect_tcp(*args, timeout=self.left(timeout), **kwargs), self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


class _DeadlineStream:
    def __init__(self, stream: Any, deadline: _Deadline) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout=self._deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout=self._deadline.left(timeout))

    def start_tls(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return _DeadlineStream(self._stream.start_tls(*args, timeout=self._deadline.left(timeout), **kwargs), self._deadline)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@dataclass(frozen=True)
class SendResult:
    """How one send went."""

    ok: bool
    # The last HTTP status Slack answered, None when no answer came.
    status: int | None = None
    # What went wrong and what to do, as a sentence; None when ok.
    error: str | None = None
    attempts: int = 0


class SlackNotifier:
    """Posts JSON bodies to one Slack incoming webhook.

    `retries` is how many times a failed attempt is retried (so at most
    `retries + 1` requests); the n-th retry waits `backoff * 2**(n-1)`
    seconds, at most `max_backoff` (a 429's Retry-After is honoured up to the
    same limit). `timeout` bounds every request.
    """

    def __init__(
        self,
        webhook_url: str,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = webhook_url.strip()
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        parts = urlsplit(self._url)
        # Problems with the URL are reported by send(), so a bad environment
        # variable costs the messages (kept in the outbox), not the console.
        self._problem = None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self._problem = (
                "The Slack webhook URL is not an http(s) URL; the message was not sent. "
                "Fix the environment variable the config names for it, then resend."
            )
        self._secrets = tuple(s for s in (self._url, parts.path if len(parts.path) > 1 else "") if s)

    def __repr__(self) -> str:
        return f"SlackNotifier(webhook_url='{MASK}', timeout={self.timeout}, retries={self.retries})"

    __str__ = __repr__

    def _scrub(self, text: str) -> str:
        """`text` without the webhook URL or its path (the secret), then redacted."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact(text)

    def send_message(self, message: Message) -> SendResult:
        """Send one of the runbook's messages, rendered for Slack."""
        return self.send(slack_payload(message))

    def send(self, payload: dict[str, Any]) -> SendResult:
        """POST `payload` as JSON; retries what may pass; never raises."""
        if self._problem:
            return SendResult(ok=False, error=self._problem)
        attempts, status, error = 0, None, None
        try:
            transport = httpx.HTTPTransport()
            deadline = _Deadline(transport._pool._network_backend)
            transport._pool._network_backend = deadline
            with httpx.Client(timeout=self.timeout, follow_redirects=False, transport=transport) as client:
                while True:
                    attempts += 1
                    retry_after = None
                    deadline.start(self.timeout)
                    try:
                        with client.stream("POST", self._url, json=payload) as response:
                            status = response.status_code
                            answer = b""
                            if not 200 <= status < 300:
                                for chunk in response.iter_bytes():
                                    answer += chunk
                                    if len(answer) >= MAX_ANSWER_BYTES:
                                        break
                    except httpx.TimeoutException:
                        status, error = None, f"Slack did not answer within {self.timeout:g} s"
                    except httpx.TransportError as err:
                        status, error = None, f"Slack could not be reached ({self._scrub(_describe(err))})"
                    else:
                        if 200 <= status < 300:
                            return SendResult(ok=True, status=status, attempts=attempts)
                        text = answer[:MAX_ANSWER_BYTES].decode("utf-8", "replace")
                        body = self._scrub(text.strip())[:200]
                        error = f"Slack answered HTTP {status}" + (f" ({body})" if body else "")
                        if status not in _RETRY_STATUSES:
                            return SendResult(ok=False, status=status, attempts=attempts, error=(
                                f"{error}: it refused the message. Check the webhook URL in the environment "
                                "variable the config names (the channel may be archived or the app removed), "
                                "then resend."
                            ))
                        retry_after = _retry_after(response)
                    if attempts > self.retries:
                        break
                    delay = min(self.max_backoff, retry_after if retry_after is not None
                                else self.backoff * 2 ** (attempts - 1))
                    log.warning("Slack message attempt %d failed (%s); retrying in %.2f s", attempts, error, delay)
                    self._sleep(delay)
        except Exception as err:  # a send must never take the console down
            log.warning("Slack message failed unexpectedly: %s", self._scrub(_describe(err)))
            return SendResult(ok=False, status=status, attempts=attempts, error=(
                f"Sending to Slack failed unexpectedly ({self._scrub(_describe(err))}); "
                "the message was not sent. Resend it later."
            ))
        tries = f"{attempts} attempt" + ("" if attempts == 1 else "s")
        return SendResult(ok=False, status=status, attempts=attempts, error=(
            f"{error} after {tries}; the message was not sent. Check the network and Slack's status, then resend."
        ))


def _describe(err: BaseException) -> str:
    # "[Errno 111] Connection refused" -> "Connection refused": the number helps nobody at 3 a.m.
    text = re.sub(r"\[Errno -?\d+\]\s*", "", str(err)).strip()
    return text or type(err).__name__


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# --- the outbox ---------------------------------------------------------------------------


def deliver(
    store: Store,
    notifier: SlackNotifier,
    incident_id: str | None,
    message: Message,
    clock: Clock,
    actor: str = "console",
) -> tuple[OutboxEntry, SendResult]:
    """Keep `message` in the outbox, send it, and record MESSAGE_SENT or
    MESSAGE_FAILED in the incident's timeline (when there is an incident).
    A failed message stays pending in the outbox for `resend_pending()`."""
    entry = store.outbox_add(incident_id, message.kind.value, message.label, slack_payload(message),
                             clock.now(), channel=CHANNEL)
    return _attempt(store, notifier, entry, clock, actor)


def resend_pending(
    store: Store, notifier: SlackNotifier, clock: Clock, incident_id: str | None = None, actor: str = "console"
) -> list[tuple[OutboxEntry, SendResult]]:
    """Try every pending outbox message again, oldest first; stops at the
    first failure (the rest would likely fail the same way)."""
    results = []
    for entry in store.outbox_pending(incident_id):
        if entry.channel != CHANNEL:
            continue
        entry, result = _attempt(store, notifier, entry, clock, actor)
        results.append((entry, result))
        if not result.ok:
            break
    return results


def _attempt(
    store: Store, notifier: SlackNotifier, entry: OutboxEntry, clock: Clock, actor: str
) -> tuple[OutboxEntry, SendResult]:
    result = notifier.send(entry.payload)
    at: datetime = clock.now()
    if result.ok:
        entry = store.outbox_mark_sent(entry.id, at)
        event = incident.message_sent(entry.kind, entry.label, CHANNEL, entry.id)
    else:
        entry = store.outbox_mark_failed(entry.id, at, result.error or "unknown error")
        event = incident.message_failed(entry.kind, entry.label, result.error or "unknown error", CHANNEL, entry.id)
    if entry.incident_id is not None:
        store.append(entry.incident_id, event.kind, event.text, at, actor=actor, data=event.data)
    return entry, result
