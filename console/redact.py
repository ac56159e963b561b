"""Redaction of obvious secrets before anything is stored, shown or sent.

Defensive, not a guarantee: it catches the secrets an incident timeline is
likely to pick up by accident (a webhook URL pasted into a note, a token in an
error message, a password in a DSN). Use `redact()` on text and
`redact_data()` on JSON-like payloads.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Slack incoming webhooks: the path is the credential.
    (re.compile(r"(https?://hooks\.slack\.com/)[^\s\"'<>]+", re.I), rf"\1{MASK}"),
    # The drill world's webhook sink takes its token in the path too.
    (re.compile(r"(/slack/webhook/)[^\s\"'<>/?]+", re.I), rf"\1{MASK}"),
    # Authorization headers: "Bearer xxx", "Basic xxx".
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*", re.I), rf"\1 {MASK}"),
    # Slack tokens.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+"), MASK),
    # AWS access key ids (long-term and temporary).
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    # JWTs (three base64url parts, the first a JSON header).
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), MASK),
    # Passwords in URLs: scheme://user:password@host. The scheme starts where a
    # run of scheme characters starts and is at most 32 long: tried from every
    # letter of a long run instead, a 64 KiB error body took 23 s (quadratic).
    (re.compile(r"((?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}://[^\s:/@]+:)[^\s@/]+(@)", re.I), rf"\1{MASK}\2"),
    # key=value or key: value for secret-looking keys (DSNs, env dumps, config).
    (
        re.compile(
            r"\b((?:aws_|pg)?(?:secret_access_key|secret|password|passwd|pwd|token|api_key|apikey|access_token)"
            r"[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&]+",
            re.I,
        ),
        rf"\1{MASK}",
    ),
)

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|authorization|webhook)", re.I)


def redact(text: str) -> str:
    """`text` with obvious secrets replaced by [REDACTED]."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_data(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings ...) with secrets redacted: strings
    are passed through `redact()`, and string values under secret-looking keys
    ("password", "token", "webhook_url" ...) are masked whole."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            key: (MASK if isinstance(item, str) and item and _SECRET_KEY.search(str(key)) else redact_data(item))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    return value
